// CONTRACT §6: fastify.rooms, used from the server side, observed through real sockets.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { RoomConnection } from '../types/index.js'
import { captureLogs, closedWithin, join, roundTrip, serve, until } from './helpers.js'

const isEvent = (event: string, room?: string) => (m: any) => m?.type === 'system' && m.event === event && (room === undefined || m.room === room)
const byConnection = (x: { connectionId: string }, y: { connectionId: string }) => x.connectionId.localeCompare(y.connectionId)

t.test('broadcast: every member, exactly the message; except skips one connection', async (t) => {
  const s = await serve(t)
  const [a, b, c, outsider] = [await s.open(), await s.open(), await s.open(), await s.open()]
  for (const x of [a, b, c]) await join(x, 'r')

  const message = { type: 'chat', room: 'r', user: { id: 'server' }, text: 'hello', nested: { list: [1, 'two', null] } }
  await s.app.rooms.broadcast('r', message)
  for (const x of [a, b, c]) t.strictSame(await x.next({ type: 'chat' }), message)

  await s.app.rooms.broadcast('r', { type: 'notice', n: 2 }, { except: b.welcome.connectionId })
  t.strictSame(await a.next({ type: 'notice' }), { type: 'notice', n: 2 })
  t.strictSame(await c.next({ type: 'notice' }), { type: 'notice', n: 2 })
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'notice'), [], 'the excepted connection got nothing')
  await roundTrip(outsider)
  t.same(outsider.received.filter((m) => m.type === 'chat' || m.type === 'notice'), [], 'non-members got nothing')
})

t.test('broadcast: any JSON value; an empty room resolves', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  await join(a, 'r')
  await s.app.rooms.broadcast('r', 'plain string')
  t.equal(await a.next((m) => typeof m === 'string'), 'plain string')
  await s.app.rooms.broadcast('r', [1, 2, 3])
  t.same(await a.next((m) => Array.isArray(m)), [1, 2, 3])
  await s.app.rooms.broadcast('r', 42)
  t.equal(await a.next((m) => m === 42), 42)
  await t.resolves(s.app.rooms.broadcast('nobody-here', { type: 'x' }))
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }], 'broadcasting to an empty room creates nothing')
})

t.test('broadcastAll reaches every connection, in rooms or not', async (t) => {
  const s = await serve(t)
  const [a, b, c] = [await s.open(), await s.open(), await s.open()]
  await join(a, 'r')
  await s.app.rooms.broadcastAll({ type: 'announcement', text: 'maintenance' })
  for (const x of [a, b, c]) t.strictSame(await x.next({ type: 'announcement' }), { type: 'announcement', text: 'maintenance' })
})

t.test('sendToUser reaches every connection of that user and nobody else', async (t) => {
  const s = await serve(t, { authenticate: (token) => ({ id: token.split('-')[0] }) })
  const alice1 = await s.open({ path: '/ws?token=alice-1' })
  const alice2 = await s.open({ path: '/ws?token=alice-2' })
  const bob = await s.open({ path: '/ws?token=bob-1' })
  t.equal(alice1.welcome.user.id, 'alice')
  t.equal(alice2.welcome.user.id, 'alice')
  await s.app.rooms.sendToUser('alice', { type: 'dm', text: 'for alice' })
  t.strictSame(await alice1.next({ type: 'dm' }), { type: 'dm', text: 'for alice' })
  t.strictSame(await alice2.next({ type: 'dm' }), { type: 'dm', text: 'for alice' })
  await roundTrip(bob)
  t.same(bob.received.filter((m) => m.type === 'dm'), [])
  await t.resolves(s.app.rooms.sendToUser('nobody', { type: 'dm' }), 'an unknown user resolves')
})

t.test('rooms.join / rooms.leave from the server send the same events', async (t) => {
  const s = await serve(t)
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await a.next(isEvent('join'))

  await s.app.rooms.join(b.welcome.connectionId, 'r')
  const expectedJoin = { type: 'system', event: 'join', room: 'r', user: b.welcome.user, text: 'User joined room' }
  t.strictSame(await a.next(isEvent('join')), expectedJoin, 'members get the join event')
  t.strictSame(await b.next(isEvent('join')), expectedJoin, 'the joined connection gets it too')

  b.send({ type: 'message', room: 'r', text: 'now a member' })
  t.equal((await a.next({ type: 'chat' })).text, 'now a member', 'the server-joined connection can message the room')

  await s.app.rooms.join(b.welcome.connectionId, 'r')
  await roundTrip(a)
  t.same(a.pending().filter(isEvent('join')), [], 'a second server join is a no-op')

  await s.app.rooms.leave(b.welcome.connectionId, 'r')
  t.strictSame(await a.next(isEvent('leave')), { type: 'system', event: 'leave', room: 'r', user: b.welcome.user, text: 'User left room' })
  await roundTrip(b)
  t.same(b.received.filter(isEvent('leave')), [], 'the leaver gets no leave event')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  const e = await b.request({ type: 'message', room: 'r', text: 'x' }, 'after-leave')
  t.equal(e.code, 'not_in_room')
})

t.test('members(room) lists { connectionId, user }; rooms() lists { room, size }', async (t) => {
  const s = await serve(t, { authenticate: (token) => ({ id: token, kind: 'person' }) })
  const a = await s.open({ path: '/ws?token=ann' })
  const b = await s.open({ path: '/ws?token=ben' })
  t.same(await s.app.rooms.members('r'), [], 'an empty room has no members')
  t.same(s.app.rooms.rooms(), [])
  await join(a, 'r')
  await join(b, 'r')
  await join(b, 's')
  t.strictSame((await s.app.rooms.members('r')).sort(byConnection), [
    { connectionId: a.welcome.connectionId, user: { id: 'ann', kind: 'person' } },
    { connectionId: b.welcome.connectionId, user: { id: 'ben', kind: 'person' } }
  ].sort(byConnection))
  t.strictSame(await s.app.rooms.members('s'), [{ connectionId: b.welcome.connectionId, user: { id: 'ben', kind: 'person' } }])
  t.strictSame(s.app.rooms.rooms().sort((x, y) => x.room.localeCompare(y.room)), [{ room: 'r', size: 2 }, { room: 's', size: 1 }])
  await b.close()
  await until(() => s.app.rooms.rooms().length === 1, 5000, 'b to be cleaned up')
  t.strictSame(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  t.strictSame(await s.app.rooms.members('s'), [])
})

t.test('stats() fields count', async (t) => {
  const s = await serve(t, { rateLimit: { max: 3, windowMs: 60000 } })
  const zero = s.app.rooms.stats()
  t.hasStrict(zero, { connections: 0, rooms: 0, messagesIn: 0, messagesOut: 0, rateLimited: 0, rejectedUpgrades: 0, slowConsumersClosed: 0, dropped: 0 })

  const [a, b] = [await s.open(), await s.open()]
  await until(() => s.app.rooms.stats().connections === 2, 5000, 'connections = 2')
  await join(a, 'r')
  await join(b, 'r')
  await join(b, 'q')
  let st = s.app.rooms.stats()
  t.equal(st.connections, 2, 'connections')
  t.equal(st.rooms, 2, 'rooms')
  t.equal(st.messagesIn, 3, 'messagesIn counts the three frames received')
  // 2 welcomes, 3 join acks, 4 join events (a hears its own; both hear b's join of r; b its join of q).
  t.equal(st.messagesOut, 9, 'messagesOut counts every frame sent, once')

  const outBefore = st.messagesOut
  await s.app.rooms.broadcast('r', { type: 'x' })
  await a.next({ type: 'x' })
  await b.next({ type: 'x' })
  st = s.app.rooms.stats()
  t.equal(st.messagesOut - outBefore, 2, 'a broadcast to two members counts two messages out')

  // a has used 1 of 3 frames: 2 more pass, the next is rate limited
  a.send({ type: 'leave', room: 'none', id: 1 })
  a.send({ type: 'leave', room: 'none', id: 2 })
  a.send({ type: 'leave', room: 'none', id: 3 })
  await a.next((m) => m.id === 1)
  await a.next((m) => m.id === 2)
  t.equal((await a.next((m) => m.id === 3)).code, 'rate_limited')
  t.equal(s.app.rooms.stats().rateLimited, 1, 'rateLimited counts refused frames')
  t.equal(s.app.rooms.stats().dropped, 0, 'nothing dropped in memory')

  await b.close()
  await until(() => s.app.rooms.stats().connections === 1, 5000, 'connections = 1')
  t.equal(s.app.rooms.stats().rooms, 1, 'the room only b was in is gone')
})

t.test('handle(type, schema, handler)', async (t) => {
  const seen: Array<{ conn: RoomConnection, msg: any }> = []
  const s = await serve(t, {}, (app) => {
    app.rooms.handle('vote', Type.Object({ room: Type.String(), choice: Type.Integer({ minimum: 1, maximum: 3 }) }, { additionalProperties: false }), (conn, msg) => {
      seen.push({ conn, msg })
      return { counted: msg.choice }
    })
    app.rooms.handle('fire-and-forget', Type.Object({ n: Type.Number() }), () => undefined)
    app.rooms.handle('slow', Type.Object({ ms: Type.Number() }), async (_conn, msg) => {
      await new Promise((resolve) => setTimeout(resolve, msg.ms))
      return ['done', msg.ms]
    })
    app.rooms.handle('boom', Type.Object({}), () => { throw new Error('handler exploded') })
    app.rooms.handle('async-boom', Type.Object({}), async () => { throw new Error('async handler exploded') })
    app.rooms.handle('falsy', Type.Object({}), () => 0)
    app.rooms.handle('null', Type.Object({}), () => null)
  })
  const a = await s.open()

  t.strictSame(await a.request({ type: 'vote', room: 'r', choice: 2 }, 'v1'), { type: 'ack', id: 'v1', data: { counted: 2 } }, 'the return value is the ack data')
  t.equal(seen.length, 1)
  t.equal(seen[0].conn.id, a.welcome.connectionId, 'handler gets the connection')
  t.strictSame(seen[0].conn.user, a.welcome.user)
  t.equal(seen[0].msg.type, 'vote', 'message has type')
  t.equal(seen[0].msg.id, 'v1', 'message has id')
  t.equal(seen[0].msg.room, 'r')
  t.equal(seen[0].msg.choice, 2)

  a.send({ type: 'vote', room: 'r', choice: 3 })
  await until(() => seen.length === 2, 5000, 'the handler to run for a frame without id')
  await roundTrip(a)
  t.same(a.received.filter((m) => m.type === 'ack'), [{ type: 'ack', id: 'v1', data: { counted: 2 } }], 'no ack without id')

  t.strictSame(await a.request({ type: 'fire-and-forget', n: 1 }, 'f1'), { type: 'ack', id: 'f1' }, 'undefined return: ack without data')
  t.strictSame(await a.request({ type: 'slow', ms: 20 }, 's1'), { type: 'ack', id: 's1', data: ['done', 20] }, 'async handler')
  t.strictSame(await a.request({ type: 'falsy' }, 'z'), { type: 'ack', id: 'z', data: 0 }, '0 is data')
  t.strictSame(await a.request({ type: 'null' }, 'n'), { type: 'ack', id: 'n', data: null }, 'null is data')

  for (const type of ['boom', 'async-boom']) {
    const e = await a.request({ type }, type)
    t.equal(e.type, 'error')
    t.equal(e.code, 'internal_error', `${type}: internal_error`)
    t.equal(e.id, type)
    t.notMatch(e.text, /exploded|\n\s+at /, 'no error message or stack sent to the client')
  }

  for (const [what, frame] of [
    ['wrong field type', { type: 'vote', room: 'r', choice: 'two' }],
    ['out of range', { type: 'vote', room: 'r', choice: 9 }],
    ['missing field', { type: 'vote', choice: 1 }],
    ['additional property', { type: 'vote', room: 'r', choice: 1, extra: true }]
  ] as const) {
    const e = await a.request(frame as any, what)
    t.equal(e.code, 'invalid_message', `${what}: invalid_message`)
    t.equal(e.id, what)
    t.ok(String(e.text).startsWith('Invalid message format'), `${what}: text (${JSON.stringify(e.text)})`)
  }
  t.equal(seen.length, 2, 'the handler never ran for invalid frames')
  t.equal(a.ws.readyState, a.ws.OPEN)
})

t.test('handle: the built-in types still work beside custom ones, unknown types are refused', async (t) => {
  const s = await serve(t, {}, (app) => {
    app.rooms.handle('typing', Type.Object({ room: Type.String() }), async (conn, msg) => {
      await app.rooms.broadcast(msg.room, { type: 'typing', room: msg.room, user: conn.user }, { except: conn.id })
    })
  })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  t.strictSame(await a.request({ type: 'typing', room: 'r' }, 't1'), { type: 'ack', id: 't1' })
  t.strictSame(await b.next({ type: 'typing' }), { type: 'typing', room: 'r', user: a.welcome.user })
  t.equal((await a.request({ type: 'typo', room: 'r' }, 't2')).code, 'invalid_message')
})

t.test("on('connect' | 'disconnect' | 'join' | 'leave') and off", async (t) => {
  const log: string[] = []
  let disconnectCode: number | undefined
  const onJoin = (conn: RoomConnection, room: string) => { log.push(`join ${conn.id} ${room}`) }
  const s = await serve(t, {}, (app) => {
    app.rooms.on('connect', (conn) => { log.push(`connect ${conn.id} ${conn.user.id}`) })
    app.rooms.on('disconnect', (conn, code) => { disconnectCode = code; log.push(`disconnect ${conn.id}`) })
    app.rooms.on('join', onJoin)
    app.rooms.on('leave', (conn, room) => { log.push(`leave ${conn.id} ${room}`) })
  })
  const a = await s.open()
  const id = a.welcome.connectionId
  await until(() => log.length >= 1, 5000, 'connect')
  t.same(log, [`connect ${id} ${a.welcome.user.id}`])
  await join(a, 'r')
  await a.request({ type: 'leave', room: 'r' })
  t.same(log.slice(1), [`join ${id} r`, `leave ${id} r`])
  s.app.rooms.off('join', onJoin)
  await join(a, 'q')
  t.same(log.slice(3), [], 'off removes the listener')
  a.ws.close(1000)
  await closedWithin(a)
  await until(() => log.some((l) => l.startsWith('disconnect')), 5000, 'disconnect')
  t.ok(log.includes(`disconnect ${id}`))
  t.equal(disconnectCode, 1000, 'disconnect gets the close code')
})

t.test('connection(id): send and close from the server', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  await join(a, 'r')
  const conn = s.app.rooms.connection(a.welcome.connectionId)
  t.ok(conn, 'found by id')
  t.equal(conn?.id, a.welcome.connectionId)
  t.strictSame(conn?.user, a.welcome.user)
  t.same([...(conn?.rooms ?? [])], ['r'])
  t.equal(s.app.rooms.connection('no-such-connection'), undefined)
  conn?.send({ type: 'private', n: 1 })
  t.strictSame(await a.next({ type: 'private' }), { type: 'private', n: 1 })
  conn?.close(4001, 'bye')
  const closed = await closedWithin(a)
  t.equal(closed.code, 4001)
  t.equal(closed.reason, 'bye')
})

t.test('hybrid: a REST route broadcasts to a room', async (t) => {
  const saved: any[] = []
  const s = await serve(t, {}, (app) => {
    app.post<{ Params: { room: string }, Body: { text: string } }>('/rooms/:room/messages', async (request, reply) => {
      const message = { room: request.params.room, user: { id: 'rest' }, text: request.body.text }
      saved.push(message)
      await app.rooms.broadcast(request.params.room, { type: 'chat', ...message })
      return reply.code(201).send(message)
    })
  })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'news')
  const res = await fetch(`http://127.0.0.1:${s.port}/rooms/news/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: 'from REST' })
  })
  t.equal(res.status, 201)
  t.strictSame(await res.json(), { room: 'news', user: { id: 'rest' }, text: 'from REST' })
  t.strictSame(await a.next({ type: 'chat' }), { type: 'chat', room: 'news', user: { id: 'rest' }, text: 'from REST' })
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'chat'), [])
  t.equal(saved.length, 1)
})

t.test('a handler that throws is logged without killing anything', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {}, (app) => {
    app.rooms.handle('boom', Type.Object({}), () => { throw new Error('handler exploded 123') })
  }, { logger: { level: 'info', stream: logs.stream } })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  t.equal((await a.request({ type: 'boom' }, 'b1')).code, 'internal_error')
  t.equal(logs.records().filter((r) => r.level === 50 && JSON.stringify(r).includes('handler exploded 123')).length, 1, 'the error is logged once, at level error')
  a.send({ type: 'message', room: 'r', text: 'still alive' })
  t.equal((await b.next({ type: 'chat' })).text, 'still alive')
  b.send({ type: 'message', room: 'r', text: 'me too' })
  t.equal((await a.next({ type: 'chat' })).text, 'me too')
})
