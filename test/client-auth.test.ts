// Refused handshakes: a refused token never loops, whether the client can see the HTTP status
// (`ws` in Node) or not (browsers, where a refusal looks like a dead server); passing refusals
// (503, 429) are retried; a token function gives every attempt a fresh token.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import { BrowserLikeWebSocket, listen, openClient, rejection } from './client-helpers.js'
import { reservedPort } from './helpers.js'

t.test('a refused token (403) is final: one attempt, an error, calls rejected', async (t) => {
  let calls = 0
  const server = await listen({ authenticate: () => { calls++; return null } })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url, { token: 'bad' })
  const queued = rejection(client.join('r'))
  const refused = await rejection(client.ready())
  const [info] = await events.next('close')
  t.equal(refused, info.error, 'ready() rejects with the refusal itself')
  t.equal(info.code, 1006)
  t.equal(info.willReconnect, false)
  t.equal(info.error.code, 'forbidden')
  t.equal(info.error.status, 403)
  t.equal((await events.next('error'))[0], info.error)
  t.equal(client.state, 'closed')
  t.same(events.events('reconnecting'), [], 'no retry scheduled')
  t.equal(calls, 1, 'authenticate ran once')
  t.equal((await queued).code, 'closed')
  t.match((await queued).message, /HTTP 403/, 'the reason travels with the rejection')
  t.equal(server.app.rooms.stats().rejectedUpgrades, 1)
})

t.test('a missing token (401) is final too', async (t) => {
  const server = await listen({ authenticate: () => ({ id: 'x' }) })
  t.teardown(() => server.app.close())
  const { events } = openClient(t, server.url)
  const [info] = await events.next('close')
  t.match(info, { willReconnect: false, error: { code: 'unauthorized', status: 401 } })
})

t.test('a refused Origin (403) and an unknown path (404) are final', async (t) => {
  const server = await listen({ allowedOrigins: ['https://example.com'], allowMissingOrigin: true })
  t.teardown(() => server.app.close())
  const { events } = openClient(t, server.url.replace('/ws', '/nope'))
  t.match((await events.next('close'))[0], { willReconnect: false, error: { code: 'handshake_refused', status: 404 } })
})

t.test('a token that expires during the session: the reconnect is refused and not retried', async (t) => {
  const valid = new Set(['t1'])
  const server = await listen({ authenticate: (token) => valid.has(token) ? { id: 'u' } : null }, (app) => {
    app.rooms.handle('kick', Type.Object({}), (conn) => { conn.close(1011, 'bye') })
  })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url, { token: 't1' })
  await client.join('r')
  valid.clear()
  await rejection(client.request('kick'))
  const [final] = await events.next('close', (info) => !info.willReconnect)
  t.equal(final.error.code, 'forbidden')
  t.equal(events.events('reconnecting').length, 1, 'one retry, refused, then stop')
  t.equal(client.state, 'closed')
})

t.test('a token function is called for every attempt, so a reconnect can use a fresh token', async (t) => {
  const seen: string[] = []
  const server = await listen({ authenticate: (token) => { seen.push(token); return { id: 'user-' + token } } }, (app) => {
    app.rooms.handle('kick', Type.Object({}), (conn) => { conn.close(1011, 'bye') })
  })
  t.teardown(() => server.app.close())
  let n = 0
  const { client, events } = openClient(t, server.url, { token: async () => `tok${++n}` })
  await client.ready()
  t.equal(client.user!.id, 'user-tok1')
  await rejection(client.request('kick'))
  await events.next('open', (info) => info.reconnected)
  t.equal(client.user!.id, 'user-tok2')
  t.same(seen, ['tok1', 'tok2'])

  const { events: badEvents } = openClient(t, server.url, { token: () => 'not a token' })
  t.match((await badEvents.next('close'))[0], { willReconnect: false, error: { code: 'handshake_refused' } },
    'a token a subprotocol cannot carry is a final error')

  let failures = 0
  const { client: flaky, events: flakyEvents } = openClient(t, server.url, {
    token: () => { if (failures++ < 2) throw new Error('token service down'); return 'fresh' }
  })
  await flaky.ready()
  t.equal(flaky.user!.id, 'user-fresh', 'a throwing token function is retried like a network error')
  t.equal(flakyEvents.events('reconnecting').length, 2)
})

t.test('browser-like socket (status hidden): bounded by maxHandshakeFailures, then final', async (t) => {
  const server = await listen({ authenticate: () => null })
  t.teardown(() => server.app.close())
  const before = BrowserLikeWebSocket.created
  const { client, events } = openClient(t, server.url, {
    token: 'bad',
    WebSocket: BrowserLikeWebSocket,
    reconnect: { initialDelayMs: 1, maxDelayMs: 5, maxHandshakeFailures: 3 }
  })
  const [final] = await events.next('close', (info) => !info.willReconnect)
  t.equal(final.error.code, 'handshake_failed')
  t.equal(final.error.status, undefined, 'the status could not be seen')
  t.equal(BrowserLikeWebSocket.created - before, 3, 'three attempts, then it stopped')
  t.equal(server.app.rooms.stats().rejectedUpgrades, 3)
  t.equal(client.state, 'closed')
})

t.test('browser-like socket: a server back within the bound is reached, and the count starts over', async (t) => {
  // The token function runs before every attempt: it holds attempt `holdAt` until released, so
  // the server comes back exactly after two hidden failures, however slow the machine is.
  let calls = 0
  let holdAt = 3
  let held = (): void => {}
  let release = (): void => {}
  const hold = (): Promise<void> => new Promise((resolve) => { held = resolve })
  let reached = hold()
  const token = async (): Promise<string> => {
    if (++calls === holdAt) {
      const gate = new Promise<void>((resolve) => { release = resolve })
      held()
      await gate
    }
    return 'tok'
  }
  const port = await reservedPort()
  const { client, events } = openClient(t, `ws://127.0.0.1:${port}/ws`, {
    token,
    WebSocket: BrowserLikeWebSocket,
    reconnect: { initialDelayMs: 1, maxDelayMs: 5, maxHandshakeFailures: 3 }
  })
  await reached
  t.equal(events.events('close').length, 2, 'two hidden failures so far')
  const server = await listen({}, undefined, port)
  t.teardown(() => server.app.close())
  release()
  await client.join('r')
  t.equal(client.state, 'open')

  holdAt = calls + 3
  reached = hold()
  await server.app.close()
  t.match((await events.next('close', (info) => info.code === 1001))[0], { willReconnect: true })
  await reached
  const again = await listen({}, undefined, port)
  t.teardown(() => again.app.close())
  release()
  t.same((await events.next('open', (info) => info.reconnected))[0].rooms, ['r'],
    'two more hidden failures were allowed: the open had reset the count')
  t.equal(client.state, 'open')
})

t.test('passing refusals are retried: 503 while the server is full, then in', async (t) => {
  const server = await listen({ maxConnections: 1 })
  t.teardown(() => server.app.close())
  const { client: first } = openClient(t, server.url)
  await first.ready()
  const { client: second, events } = openClient(t, server.url)
  const [refused] = await events.next('close')
  t.match(refused, { code: 1006, willReconnect: true })
  await events.next('reconnecting')
  await first.close()
  await second.ready()
  t.equal(second.state, 'open')
})
