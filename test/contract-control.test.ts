// CONTRACT §11 on one node: disconnectUser, joinUser, leaveUser, session expiry (4001 at expiresAt,
// 403 for an expired session), and 1001 on shutdown under a user-registered @fastify/websocket.
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import wsRooms from '../lib/index.js'
import { closedWithin, connect, join, refusedUpgrade, roundTrip, serve, type TestClient } from './helpers.js'

const byToken = { authenticate: (token: string) => ({ id: token.split(':')[0] }) }

t.test('disconnectUser closes every connection of the user with the code and reason', async (t) => {
  const s = await serve(t, byToken)
  const a1 = await s.open({ headers: { authorization: 'Bearer alice:1' } })
  const a2 = await s.open({ headers: { authorization: 'Bearer alice:2' } })
  const bob = await s.open({ headers: { authorization: 'Bearer bob' } })
  await join(a1, 'r')
  await join(bob, 'r')
  await s.app.rooms.disconnectUser('alice', { code: 4003, reason: 'Banned' })
  t.strictSame(await closedWithin(a1), { code: 4003, reason: 'Banned' })
  t.strictSame(await closedWithin(a2), { code: 4003, reason: 'Banned' })
  const left = await bob.next((m) => m.type === 'system' && m.event === 'leave')
  t.equal(left.user.id, 'alice', 'the others hear the leave')
  await roundTrip(bob)
  t.equal(bob.ws.readyState, bob.ws.OPEN, 'other users stay')

  const carol = await s.open({ headers: { authorization: 'Bearer carol' } })
  await s.app.rooms.disconnectUser('carol')
  t.strictSame(await closedWithin(carol), { code: 4000, reason: 'Disconnected by the server' }, 'the defaults')
  await t.resolves(s.app.rooms.disconnectUser('nobody'), 'a user with no connection is fine')
})

t.test('disconnectUser refuses bad arguments and changes nothing', async (t) => {
  const s = await serve(t, byToken)
  const a = await s.open({ headers: { authorization: 'Bearer alice' } })
  for (const code of [1000, 3999, 5000, 4000.5, '4000']) {
    await t.rejects(s.app.rooms.disconnectUser('alice', { code: code as never }), { message: /code must be an integer from 4000 to 4999/ }, `code ${String(code)}`)
  }
  await t.rejects(s.app.rooms.disconnectUser(42 as never), { name: 'TypeError', message: /userId must be a string/ })
  await t.rejects(s.app.rooms.disconnectUser('alice', { reason: 'x'.repeat(200) }), { message: /reason must be a string of at most 123 bytes/ })
  await roundTrip(a)
  t.equal(a.ws.readyState, a.ws.OPEN, 'still connected')
})

t.test('joinUser and leaveUser move every connection of the user, with the usual events, without authorizeJoin', async (t) => {
  let asked = 0
  const s = await serve(t, { ...byToken, authorizeJoin: () => { asked++; return false } })
  const a1 = await s.open({ headers: { authorization: 'Bearer alice:1' } })
  const a2 = await s.open({ headers: { authorization: 'Bearer alice:2' } })
  const bob = await s.open({ headers: { authorization: 'Bearer bob' } })
  await s.app.rooms.joinUser('bob', 'vip')
  await s.app.rooms.joinUser('alice', 'vip')
  t.equal(asked, 0, 'authorizeJoin is not asked')
  const joinsSeen = bob.received.filter((m) => m.type === 'system' && m.event === 'join' && m.room === 'vip').map((m) => m.user.id)
  await roundTrip(bob)
  t.same(bob.received.filter((m) => m.type === 'system' && m.event === 'join' && m.room === 'vip').map((m) => m.user.id), ['bob', 'alice', 'alice'],
    `both connections of alice joined, with join events (${joinsSeen.length} seen by the resolve)`)
  t.same((await s.app.rooms.members('vip')).map((m) => m.user.id).sort(), ['alice', 'alice', 'bob'])
  a1.send({ type: 'message', room: 'vip', text: 'in' })
  t.equal((await bob.next({ type: 'chat' })).text, 'in', 'a joined connection can talk in the room')

  await s.app.rooms.leaveUser('alice', 'vip')
  t.same((await s.app.rooms.members('vip')).map((m) => m.user.id), ['bob'])
  await roundTrip(bob)
  t.equal(bob.received.filter((m) => m.type === 'system' && m.event === 'leave' && m.user.id === 'alice').length, 2)
  await roundTrip(a1)
  await roundTrip(a2)
  // alice:1 leaves first (alice:2, still in, hears it); the leaver itself hears nothing.
  t.same(a1.received.filter((m) => m.type === 'system' && m.event === 'leave'), [], 'the leaver gets no leave event')
  t.equal(a2.received.filter((m) => m.type === 'system' && m.event === 'leave').length, 1)
  await t.resolves(s.app.rooms.leaveUser('alice', 'vip'), 'leaving again is a no-op')
})

t.test('joinUser and leaveUser refuse bad arguments', async (t) => {
  const s = await serve(t, byToken)
  await t.rejects(s.app.rooms.joinUser('alice', 7 as never), { name: 'TypeError', message: /room must be a string/ })
  await t.rejects(s.app.rooms.joinUser('alice', ''), { code: 'FST_WS_ROOMS_INVALID_ROOM' })
  await t.rejects(s.app.rooms.leaveUser(null as never, 'r'), { name: 'TypeError', message: /userId must be a string/ })
  t.same(s.app.rooms.rooms(), [])
})

t.test('a session with expiresAt: in the welcome, closed with 4001 "Token expired" at that time', async (t) => {
  const lifetimes: Record<string, number> = { short: 400, long: 60_000 }
  const s = await serve(t, {
    authenticate: (token) => ({ user: { id: token }, expiresAt: Date.now() + lifetimes[token] })
  })
  const started = Date.now()
  const short = await s.open({ headers: { authorization: 'Bearer short' } })
  const long = await s.open({ headers: { authorization: 'Bearer long' } })
  t.type(short.welcome.expiresAt, 'number')
  t.ok(Math.abs(short.welcome.expiresAt - (started + 400)) < 200, 'the welcome carries expiresAt')
  t.strictSame(Object.keys(short.welcome).sort(), ['connectionId', 'event', 'expiresAt', 'text', 'type', 'user'])
  t.strictSame(short.welcome.user, { id: 'short' }, 'the user is the session\'s user')
  const closed = await closedWithin(short, 3000)
  const at = Date.now()
  t.strictSame(closed, { code: 4001, reason: 'Token expired' })
  t.ok(at >= short.welcome.expiresAt - 5 && at <= short.welcome.expiresAt + 500, `closed ${at - short.welcome.expiresAt} ms after expiresAt`)
  await roundTrip(long)
  t.equal(long.ws.readyState, long.ws.OPEN, 'a later expiry is untouched')
})

t.test('an expired session is refused at the upgrade with 403; a bad expiresAt too, logged', async (t) => {
  const s = await serve(t, {
    authenticate: (token) => token === 'past'
      ? { user: { id: 'p' }, expiresAt: Date.now() - 1 }
      : { user: { id: 'q' }, expiresAt: token === 'nan' ? Number.NaN : 'soon' as never }
  })
  const past = await refusedUpgrade(`${s.url}?token=past`)
  t.equal(past.status, 403)
  t.equal(past.body.message, 'Token expired')
  for (const token of ['nan', 'string']) t.equal((await refusedUpgrade(`${s.url}?token=${token}`)).status, 403, `expiresAt from ${token}`)
  t.equal(s.app.rooms.stats().connections, 0)
})

t.test('an object with a string id is the user, even with an expiresAt field', async (t) => {
  const s = await serve(t, { authenticate: () => ({ id: 'u', expiresAt: Date.now() - 1000 }) })
  const c = await s.open({ headers: { authorization: 'Bearer t' } })
  t.strictSame(c.welcome.user.id, 'u')
  t.notOk('expiresAt' in c.welcome)
})

t.test('1001 on close() when the user registered @fastify/websocket first with its defaults', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(wsRooms)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  const clients: TestClient[] = []
  for (let i = 0; i < 3; i++) clients.push(await connect(`ws://127.0.0.1:${address.port}/ws`))
  await join(clients[0], 'r')
  const started = Date.now()
  await app.close()
  const took = Date.now() - started
  for (const c of clients) t.equal((await closedWithin(c)).code, 1001, 'the client got 1001, not 1005')
  t.ok(took < 2000, `close() took ${took} ms`)
})
