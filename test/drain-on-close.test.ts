// Option drainOnClose: fastify.close() first drains the node over that many ms (1012 "Service
// restart" spread over the window, upgrades refused with 503 + Retry-After), then closes what is
// left with 1001 as it always does.
import t from 'tap'
import Fastify from 'fastify'
import wsRooms from '../lib/index.js'
import { closedWithin, connect, connectMany, refusedUpgrade, serve, until } from './helpers.js'

t.test('a bad drainOnClose fails register, naming the option', async (t) => {
  for (const drainOnClose of [-1, 1.5, '10s', Number.NaN, null, 2 ** 31]) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(wsRooms, { drainOnClose } as any) }, /"drainOnClose"/, `drainOnClose ${String(drainOnClose)}`)
    await app.close().catch(() => {})
  }
  const app = Fastify({ logger: false })
  await t.resolves(async () => { await app.register(wsRooms, { drainOnClose: 0 }) }, '0 (the default) is accepted')
  await app.close()
})

t.test('close() drains first: 1012 spread over the window, upgrades refused meanwhile, then the server stops', async (t) => {
  const s = await serve(t, { drainOnClose: 6000, closeTimeout: 5000 })
  const clients = await connectMany(s.url, 6)
  clients.forEach((c) => s.track(c))
  const order: number[] = []
  clients.forEach((c, i) => { c.closed.then(() => order.push(i), () => {}) })

  let closeResolved = false
  const midpoint = new Promise((resolve) => setTimeout(resolve, 3000))
  const closing = s.app.close().then(() => { closeResolved = true })
  await until(() => order.length >= 1, 5000, 'the first close')
  // This client keeps its socket open after the refusal: close() must not wait for it.
  const refused = await refusedUpgrade(s.url)
  t.equal(refused.status, 503, 'an upgrade during the drain gets 503')
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 6, `with Retry-After in whole seconds up to the window: ${String(refused.headers['retry-after'])}`)

  await midpoint
  // 6 over 6 s: one a second. Generous bounds: never none, and not all unless this timer is 2 s late.
  t.ok(order.length >= 1 && order.length <= 5, `some but not all closed at the midpoint (${order.length} of 6)`)
  t.equal(closeResolved, false, 'close() waits for the drain')
  await closing
  const codes = await Promise.all(clients.map(async (c) => await closedWithin(c)))
  t.same(codes, Array(6).fill({ code: 1012, reason: 'Service restart' }), 'every client got 1012, none 1001')
  t.same(order, [0, 1, 2, 3, 4, 5], 'one after the other')
  t.equal(s.app.server.listening, false, 'then the server stopped')
})

t.test('close() during a drain started by hand does not start another: the rest get 1001', async (t) => {
  const s = await serve(t, { drainOnClose: 60_000, closeTimeout: 5000 })
  const clients = await connectMany(s.url, 3)
  clients.forEach((c) => s.track(c))
  const drained = s.app.rooms.drain({ overMs: 60_000 })
  await until(() => s.app.rooms.stats().connections === 2, 5000, 'the first close')
  await s.app.close()
  await drained
  t.same((await Promise.all(clients.map(async (c) => await closedWithin(c)))).map((c) => c.code), [1012, 1001, 1001])
})

t.test('without drainOnClose, close() gives 1001 to every client at once', async (t) => {
  const s = await serve(t)
  const clients = await connectMany(s.url, 2)
  clients.forEach((c) => s.track(c))
  await s.app.close()
  t.same((await Promise.all(clients.map(async (c) => await closedWithin(c)))).map((c) => c.code), [1001, 1001])
})

t.test('without drainOnClose too, an upgrade answered 503 while close() runs does not hold close() up', async (t) => {
  const s = await serve(t, { closeTimeout: 1000 })
  // A client that does not answer its close keeps close() busy for closeTimeout...
  const stuck = s.track(await connect(s.url))
  ;(stuck.ws as any)._socket.pause()
  const closing = s.app.close()
  await new Promise((resolve) => setTimeout(resolve, 100))
  // ...meanwhile Fastify answers this upgrade with its own 503, and this client keeps its socket.
  t.equal((await refusedUpgrade(s.url)).status, 503)
  await closing
  t.equal(s.app.server.listening, false, 'close() resolved and the server stopped')
  ;(stuck.ws as any)._socket.resume()
})

t.test('injectWS still works, refused or not', async (t) => {
  const s = await serve(t, { authenticate: (token) => (token === 'good' ? { id: 'u' } : null) })
  await t.rejects(s.app.injectWS('/ws'), /401/, 'no token: 401')
  const ws = await s.app.injectWS('/ws', { headers: { authorization: 'Bearer good' } })
  t.equal(ws.readyState, ws.OPEN, 'a good token: open')
  ws.terminate()
})
