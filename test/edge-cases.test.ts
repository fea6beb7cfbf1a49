// Refusal and lifecycle paths the contract files do not reach: malformed Origin headers, an
// authenticate that returns no id, origin lists with paths, a user's own handleProtocols,
// upgrades that arrive during shutdown, and a backlog that grows behind a handler that never ends.
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import wsRooms from '../lib/index.js'
import { captureLogs, closedWithin, connect, refusedUpgrade, roundTrip, serve, until } from './helpers.js'

t.test('a malformed Origin header is refused under the same-origin default', async (t) => {
  const s = await serve(t)
  t.equal((await refusedUpgrade(s.url, { headers: { origin: 'not a url' } })).status, 403)
  t.equal((await refusedUpgrade(s.url, { headers: { origin: 'null' } })).status, 403)
  t.equal((await s.open({ headers: { origin: `http://127.0.0.1:${s.port}` } })).welcome.event, 'welcome', 'the same origin is accepted')
})

t.test('authenticate returning an object without a string id is refused (403) and logged', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, { authenticate: () => ({ name: 'no id' }) as never }, undefined, { logger: { level: 'error', stream: logs.stream } })
  t.equal((await refusedUpgrade(`${s.url}?token=abc`)).status, 403)
  t.ok(logs.records().some((r) => /string id/.test(r.msg)), 'the misuse is logged')
  t.notOk(logs.lines.some((l) => l.includes('abc')), 'without the token')
})

t.test('allowedOrigins entries must be bare origins', async (t) => {
  for (const [entry, pattern] of [
    ['https://example.com/', /did you mean "https:\/\/example.com"/],
    ['example.com', /is not an origin like/],
    ['', /non-empty origin string/]
  ] as const) {
    const app = Fastify()
    app.register(wsRooms, { allowedOrigins: [entry] })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: pattern }, JSON.stringify(entry))
    await app.close()
  }
})

t.test("a user's own handleProtocols keeps choosing for their routes", async (t) => {
  const app = Fastify()
  await app.register(websocket, { options: { handleProtocols: (protocols: Set<string>) => protocols.has('b') ? 'b' : false } })
  app.get('/mine', { websocket: true }, (socket) => { socket.close(1000) })
  await app.register(wsRooms)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const ws = new WebSocket(`ws://127.0.0.1:${port}/mine`, ['a', 'b'])
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  t.equal(ws.protocol, 'b')
  const rooms = await connect(`ws://127.0.0.1:${port}/ws`, { protocols: ['rooms.v1'] })
  t.equal(rooms.ws.protocol, 'rooms.v1')
  rooms.ws.terminate()
})

t.test('an upgrade that completes during shutdown is closed with 1001', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const app = Fastify()
  await app.register(wsRooms, { authenticate: async (token) => { await gate; return { id: token } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=late`)
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  ws.on('error', () => {})
  await new Promise((resolve) => setTimeout(resolve, 50))
  const closing = app.close()
  release()
  t.equal(await closed, 1001)
  await closing
})

t.test('frames piling up behind a handler that never settles close the connection (1008), others go on', async (t) => {
  const s = await serve(t, { rateLimit: false }, (app) => {
    app.rooms.handle('stall', Type.Object({}), () => new Promise(() => {}))
  })
  const staller = await s.open()
  const other = await s.open()
  staller.send({ type: 'stall' })
  for (let i = 0; i < 1100; i++) staller.send({ type: 'join', room: 'r' })
  t.equal((await closedWithin(staller)).code, 1008)
  t.same(await other.request({ type: 'join', room: 'r' }, 1), { type: 'ack', id: 1 })
})

t.test('retainRequest: the upgrade request is kept only when asked for or for authorizeJoin', async (t) => {
  const seen: Array<[string, unknown, string]> = []
  const record = (name: string) => (app: any) => {
    app.rooms.on('connect', (conn: any) => { seen.push([name, conn.request?.headers['x-probe'], conn.ip]) })
  }
  const plain = await serve(t, {}, record('plain'))
  await plain.open({ headers: { 'x-probe': 'a' } })
  const kept = await serve(t, { retainRequest: true }, record('kept'))
  await kept.open({ headers: { 'x-probe': 'b' } })
  let authorizeSaw: unknown
  const authorized = await serve(t, { authorizeJoin: (_user, _room, request) => { authorizeSaw = request.headers['x-probe']; return true } }, record('authorizeJoin'))
  const c = await authorized.open({ headers: { 'x-probe': 'c' } })
  t.same(await c.request({ type: 'join', room: 'r' }, 1), { type: 'ack', id: 1 })
  t.same(seen, [['plain', undefined, '127.0.0.1'], ['kept', 'b', '127.0.0.1'], ['authorizeJoin', 'c', '127.0.0.1']])
  t.equal(authorizeSaw, 'c', 'authorizeJoin is given the upgrade request')

  const app = Fastify()
  app.register(wsRooms, { retainRequest: false, authorizeJoin: () => true })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /"retainRequest"/ })
  await app.close()
})

t.test('rooms.handle refuses misuse at once, naming the type', async (t) => {
  const s = await serve(t)
  const ok = Type.Object({})
  t.throws(() => s.app.rooms.handle('', ok, () => {}), { code: 'FST_WS_ROOMS_INVALID_HANDLER', message: /non-empty string/ })
  t.throws(() => s.app.rooms.handle('join', ok, () => {}), { message: /"join".*built in/ })
  t.throws(() => s.app.rooms.handle('x', Type.String() as never, () => {}), { message: /"x".*Type\.Object/ })
  t.throws(() => s.app.rooms.handle('x', ok, 'not a function' as never), { message: /"x".*must be a function/ })
  s.app.rooms.handle('x', ok, () => {})
  t.throws(() => s.app.rooms.handle('x', ok, () => {}), { message: /"x".*exists already/ })
})

t.test('sendToUser follows a user through several connections opening and closing', async (t) => {
  const s = await serve(t, { authenticate: (token) => ({ id: token.split(':')[0] }) })
  const [a, b, c] = [await s.open({ headers: { authorization: 'Bearer ann:1' } }), await s.open({ headers: { authorization: 'Bearer ann:2' } }), await s.open({ headers: { authorization: 'Bearer ann:3' } })]
  await s.app.rooms.sendToUser('ann', { type: 'dm', n: 1 })
  for (const x of [a, b, c]) t.same(await x.next({ type: 'dm' }), { type: 'dm', n: 1 })
  await a.close()
  await b.close()
  await until(() => s.app.rooms.stats().connections === 1)
  await s.app.rooms.sendToUser('ann', { type: 'dm', n: 2 })
  t.same(await c.next({ type: 'dm' }), { type: 'dm', n: 2 })
  const d = await s.open({ headers: { authorization: 'Bearer ann:4' } })
  await s.app.rooms.sendToUser('ann', { type: 'dm', n: 3 })
  t.same(await c.next({ type: 'dm' }), { type: 'dm', n: 3 })
  t.same(await d.next({ type: 'dm' }), { type: 'dm', n: 3 })
  await roundTrip(c)
  t.same(c.received.filter((m) => m.type === 'dm').map((m) => m.n), [1, 2, 3], 'each message exactly once')
})
