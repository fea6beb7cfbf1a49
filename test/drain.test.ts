// fastify.rooms.drain(): upgrades refused with 503 + Retry-After from the call on, the node's
// connections closed with 1012 "Service restart" spread over the window, the promise resolving
// once all are closed, and fastify.close() afterwards closing what is left with 1001.
import t from 'tap'
import { closedWithin, connectMany, refusedUpgrade, serve, until, type Closed, type TestClient } from './helpers.js'

/** Each client's close, and in which order they came. */
function watchCloses (clients: TestClient[]): { order: number[], codes: Promise<Closed[]> } {
  const order: number[] = []
  clients.forEach((c, i) => { c.closed.then(() => order.push(i), () => {}) })
  return { order, codes: Promise.all(clients.map(async (c) => await closedWithin(c, 20_000))) }
}

t.test('drain closes every connection with 1012 "Service restart", spread over the window, then resolves', async (t) => {
  const s = await serve(t, { closeTimeout: 5000 })
  const clients = await connectMany(s.url, 6)
  clients.forEach((c) => s.track(c))
  const disconnects: number[] = []
  s.app.rooms.on('disconnect', (_conn, code) => { disconnects.push(code) })
  const closes = watchCloses(clients)

  // 6 connections over 6 s: one a second, the first at once.
  let resolved = false
  const drained = s.app.rooms.drain({ overMs: 6000 }).then(() => { resolved = true })
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const atMidpoint = closes.order.length
  // Generous bounds: about 3 are closed by now; never none, and not all unless this timer is
  // 2 s late (the last is due at 5 s).
  t.ok(atMidpoint >= 1 && atMidpoint <= 5, `some but not all connections closed at the midpoint (${atMidpoint} of 6)`)
  t.equal(resolved, false, 'drain() has not resolved while connections are open')

  await drained
  t.equal(disconnects.length, 6, 'drain() resolved after every connection was closed')
  const codes = await closes.codes
  t.same(codes, Array(6).fill({ code: 1012, reason: 'Service restart' }), 'every client got 1012 "Service restart"')
  t.same(closes.order, [0, 1, 2, 3, 4, 5], 'closed one by one, oldest first')
  t.equal(s.app.rooms.stats().connections, 0)
  t.same(s.app.rooms.rooms(), [])
})

t.test('from the call on, upgrades get 503 with Retry-After, counted in rejectedUpgrades', async (t) => {
  const s = await serve(t)
  const c = await s.open()
  const rejectedBefore = s.app.rooms.stats().rejectedUpgrades
  const drained = s.app.rooms.drain({ overMs: 30_000 })
  const refused = await refusedUpgrade(s.url)
  t.equal(refused.status, 503)
  t.match(refused.body, { statusCode: 503, error: 'Service Unavailable', message: /Service restart/ })
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 30, `Retry-After is whole seconds within the window: ${String(refused.headers['retry-after'])}`)
  t.equal(s.app.rooms.stats().rejectedUpgrades, rejectedBefore + 1, 'counted in rejectedUpgrades')
  t.equal((await closedWithin(c)).code, 1012, 'the one connection was closed at once (the first of the window)')
  await drained
  // Drained is not open again: a drained node waits for its replacement.
  const after = await refusedUpgrade(s.url)
  t.equal(after.status, 503, 'still refused after the drain resolved')
  t.equal(after.headers['retry-after'], '1', 'the window is over: Retry-After 1')
})

t.test('fastify.close() during a drain closes what is left with 1001, and the drain resolves', async (t) => {
  const s = await serve(t, { closeTimeout: 5000 })
  const clients = await connectMany(s.url, 4)
  clients.forEach((c) => s.track(c))
  const closes = watchCloses(clients)
  const drained = s.app.rooms.drain({ overMs: 60_000 })
  await until(() => closes.order.length === 1, 5000, 'the first close')
  await s.app.close()
  await drained
  t.same((await closes.codes).map((c) => c.code), [1012, 1001, 1001, 1001], 'the first got 1012 at once, the rest 1001 from close()')
})

t.test('overMs 0 closes every connection at once; no connections: resolves at once', async (t) => {
  const s = await serve(t)
  const clients = await connectMany(s.url, 3)
  clients.forEach((c) => s.track(c))
  await s.app.rooms.drain({ overMs: 0 })
  t.same((await Promise.all(clients.map(async (c) => await closedWithin(c)))).map((c) => c.code), [1012, 1012, 1012])

  const empty = await serve(t)
  await empty.app.rooms.drain()
  t.equal((await refusedUpgrade(empty.url)).status, 503, 'a drained node without connections refuses upgrades too')
})

t.test('a second drain() while one is under way gets the same drain (its window is kept)', async (t) => {
  const s = await serve(t, { closeTimeout: 5000 })
  const clients = await connectMany(s.url, 2)
  clients.forEach((c) => s.track(c))
  const closes = watchCloses(clients)
  const first = s.app.rooms.drain({ overMs: 1000 })
  let secondDone = false
  const second = s.app.rooms.drain({ overMs: 0 }).then(() => { secondDone = true })
  await until(() => closes.order.length === 1, 5000, 'the first close')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(secondDone, false, 'the second call did not close the rest at once')
  await Promise.all([first, second])
  t.same((await closes.codes).map((c) => c.code), [1012, 1012])
  await s.app.rooms.drain({ overMs: 5 })
  t.pass('a call after the drain resolves at once')
})

t.test('an upgrade past its handshake when the drain began is closed with 1012', async (t) => {
  let letIn!: () => void
  const gate = new Promise<void>((resolve) => { letIn = resolve })
  let authenticating = 0
  const s = await serve(t, {
    authenticate: async (token) => {
      authenticating++
      await gate
      return { id: token }
    }
  })
  const { default: WebSocket } = await import('ws')
  const ws = new WebSocket(`${s.url}?token=slow`)
  ws.on('error', () => {})
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  t.teardown(() => ws.terminate())
  // authenticate is running: the handshake's drain check is behind this upgrade.
  await until(() => authenticating === 1, 5000, 'authenticate to be called')
  const drained = s.app.rooms.drain({ overMs: 0 })
  letIn()
  t.same(await closed, { code: 1012, reason: 'Service restart' })
  await drained
})

t.test('a bad argument rejects with a TypeError naming it', async (t) => {
  const s = await serve(t)
  for (const overMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '1000', null, 2 ** 31]) {
    await t.rejects(s.app.rooms.drain({ overMs } as any), { name: 'TypeError', message: /overMs/ }, `overMs ${String(overMs)}`)
  }
  for (const options of [null, 5, 'fast', [1]]) {
    await t.rejects(s.app.rooms.drain(options as any), { name: 'TypeError', message: /drain\(options\)/ }, `options ${String(options)}`)
  }
  const c = await s.open()
  t.equal(c.ws.readyState, c.ws.OPEN, 'nothing was drained by a bad call: upgrades still pass')
})
