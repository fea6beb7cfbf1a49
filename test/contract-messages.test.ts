// CONTRACT §4 and §5: frames from client to server and back, word for word.
import t from 'tap'
import { join, roundTrip, serve } from './helpers.js'

const joinEvent = (room: string, user: unknown) => ({ type: 'system', event: 'join', room, user, text: 'User joined room' })
const leaveEvent = (room: string, user: unknown) => ({ type: 'system', event: 'leave', room, user, text: 'User left room' })
const isEvent = (event: string, room?: string) => (m: any) => m?.type === 'system' && m.event === event && (room === undefined || m.room === room)

function checkError (t: any, frame: any, code: string, id?: string | number): void {
  t.equal(frame?.type, 'error', 'an error frame')
  t.equal(frame?.code, code, `code ${code}`)
  t.type(frame?.text, 'string', 'text is a string')
  if (id === undefined) t.notOk('id' in (frame ?? {}), 'no id when the frame had none')
  else t.equal(frame?.id, id, 'carries the id of the refused frame')
  const extra = Object.keys(frame ?? {}).filter((k) => !['type', 'code', 'text', 'id'].includes(k))
  t.same(extra, [], 'no undocumented fields')
}

t.test('welcome frame, exactly', async (t) => {
  const s = await serve(t)
  const c = await s.open()
  t.equal(c.received.length, 1, 'the welcome is the first frame')
  t.strictSame(c.received[0], {
    type: 'system',
    event: 'welcome',
    text: 'Connected to WebSocket server',
    connectionId: c.welcome.connectionId,
    user: { id: c.welcome.user.id }
  })
  t.type(c.welcome.connectionId, 'string')
  t.ok(c.welcome.connectionId.length > 0)
  t.match(c.welcome.user.id, /^anon-.+/)
})

t.test('welcome carries the authenticated user as given', async (t) => {
  const s = await serve(t, { authenticate: (token) => ({ id: 'u-' + token, name: 'Ada', roles: ['admin'] }) })
  const c = await s.open({ headers: { authorization: 'Bearer 1' } })
  t.strictSame(c.welcome.user, { id: 'u-1', name: 'Ada', roles: ['admin'] })
})

t.test('anonymous user ids and connection ids are unique per connection', async (t) => {
  const s = await serve(t)
  const clients = await Promise.all(Array.from({ length: 8 }, () => s.open()))
  const ids = clients.map((c) => c.welcome.user.id)
  const conns = clients.map((c) => c.welcome.connectionId)
  for (const id of ids) t.match(id, /^anon-./)
  t.equal(new Set(ids).size, 8, 'user ids are unique')
  t.equal(new Set(conns).size, 8, 'connection ids are unique')
})

t.test('join: event to every member including the joiner, and an ack', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  const b = await s.open()
  const outsider = await s.open()

  a.send({ type: 'join', room: 'lobby', id: 'j1' })
  t.strictSame(await a.next({ type: 'ack' }), { type: 'ack', id: 'j1' })
  t.strictSame(await a.next(isEvent('join')), joinEvent('lobby', a.welcome.user), 'the joiner gets its own join event')

  b.send({ type: 'join', room: 'lobby', id: 7 })
  t.strictSame(await b.next({ type: 'ack' }), { type: 'ack', id: 7 }, 'numeric id kept as a number')
  t.strictSame(await b.next(isEvent('join')), joinEvent('lobby', b.welcome.user))
  t.strictSame(await a.next(isEvent('join')), joinEvent('lobby', b.welcome.user), 'existing members get the join event')

  await roundTrip(outsider)
  t.same(outsider.received.filter(isEvent('join')), [], 'non-members get nothing')
})

t.test('join without id: events but no ack', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  a.send({ type: 'join', room: 'r' })
  t.strictSame(await a.next(isEvent('join')), joinEvent('r', a.welcome.user))
  await roundTrip(a)
  t.same(a.received.filter((m) => m.type === 'ack'), [], 'no ack without id')
})

t.test('id 0 and empty-string id are ids', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  a.send({ type: 'join', room: 'r', id: 0 })
  t.strictSame(await a.next({ type: 'ack' }), { type: 'ack', id: 0 })
  a.send({ type: 'leave', room: 'r', id: '' })
  t.strictSame(await a.next({ type: 'ack' }), { type: 'ack', id: '' })
})

t.test('double join: acks again, no second join event', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  const b = await s.open()
  await join(b, 'r')
  await b.next(isEvent('join'))
  await join(a, 'r')
  await a.next(isEvent('join'))
  await b.next(isEvent('join'))

  a.send({ type: 'join', room: 'r', id: 'again' })
  t.strictSame(await a.next((m) => m.id === 'again'), { type: 'ack', id: 'again' })
  await roundTrip(a)
  await roundTrip(b)
  t.same(a.pending().filter(isEvent('join')), [], 'joiner: no second join event')
  t.same(b.pending().filter(isEvent('join')), [], 'other member: no second join event')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 2 }])
})

t.test('leave: remaining members get leave, the leaver only its ack', async (t) => {
  const s = await serve(t)
  const [a, b, c] = [await s.open(), await s.open(), await s.open()]
  for (const x of [a, b, c]) await join(x, 'r')
  c.send({ type: 'leave', room: 'r', id: 'bye' })
  t.strictSame(await c.next((m) => m.id === 'bye'), { type: 'ack', id: 'bye' })
  t.strictSame(await a.next(isEvent('leave')), leaveEvent('r', c.welcome.user))
  t.strictSame(await b.next(isEvent('leave')), leaveEvent('r', c.welcome.user))
  await roundTrip(c)
  t.same(c.received.filter(isEvent('leave')), [], 'the leaver gets no leave event')

  a.send({ type: 'message', room: 'r', text: 'after' })
  t.equal((await b.next({ type: 'chat' })).text, 'after')
  await roundTrip(c)
  t.same(c.received.filter((m) => m.type === 'chat'), [], 'the leaver no longer gets room messages')
})

t.test('last member leaving removes the room', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  await join(a, 'r')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  t.equal((await a.request({ type: 'leave', room: 'r' })).type, 'ack')
  t.same(s.app.rooms.rooms(), [], 'no room left behind')
})

t.test('disconnect: remaining members get leave', async (t) => {
  const s = await serve(t)
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r1')
  await join(a, 'r2')
  await join(b, 'r1')
  await join(b, 'r2')
  await b.close()
  const events = [await a.next(isEvent('leave')), await a.next(isEvent('leave'))]
  t.same(events.map((e) => e.room).sort(), ['r1', 'r2'])
  for (const e of events) t.strictSame(e, leaveEvent(e.room, b.welcome.user))
  t.same(s.app.rooms.rooms().sort((x, y) => x.room.localeCompare(y.room)), [{ room: 'r1', size: 1 }, { room: 'r2', size: 1 }])
})

t.test('message: chat to the others, ack to the sender', async (t) => {
  const s = await serve(t)
  const [a, b, c, outsider] = [await s.open(), await s.open(), await s.open(), await s.open()]
  for (const x of [a, b, c]) await join(x, 'r')
  const text = 'héllo 🌍 "quoted" \\ \n new line'
  a.send({ type: 'message', room: 'r', text, id: 'm1' })
  t.strictSame(await a.next((m) => m.id === 'm1'), { type: 'ack', id: 'm1' })
  t.strictSame(await b.next({ type: 'chat' }), { type: 'chat', room: 'r', user: a.welcome.user, text })
  t.strictSame(await c.next({ type: 'chat' }), { type: 'chat', room: 'r', user: a.welcome.user, text })
  await roundTrip(a)
  await roundTrip(outsider)
  t.same(a.received.filter((m) => m.type === 'chat'), [], 'the sender does not get its own message')
  t.same(outsider.received.filter((m) => m.type === 'chat'), [], 'non-members do not get it')
})

t.test('message without id: no ack', async (t) => {
  const s = await serve(t)
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  a.send({ type: 'message', room: 'r', text: 'x' })
  await b.next({ type: 'chat' })
  await roundTrip(a)
  t.same(a.received.filter((m) => m.type === 'ack' && m.id === undefined), [])
  t.equal(a.received.filter((m) => m.type === 'ack').length, 1, 'only the join ack')
})

t.test('one sender: messages arrive in order', async (t) => {
  const s = await serve(t, { rateLimit: false })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  for (let i = 0; i < 50; i++) a.send({ type: 'message', room: 'r', text: String(i) })
  const got = []
  for (let i = 0; i < 50; i++) got.push((await b.next({ type: 'chat' })).text)
  t.same(got, Array.from({ length: 50 }, (_, i) => String(i)))
})

t.test('a client-sent user field is ignored', async (t) => {
  const s = await serve(t, { authenticate: (token) => ({ id: token }) })
  const a = await s.open({ path: '/ws?token=alice' })
  const b = await s.open({ path: '/ws?token=bob' })
  await join(b, 'r')
  a.send({ type: 'join', room: 'r', id: 1, user: { id: 'admin' } })
  await a.next({ type: 'ack' })
  t.strictSame(await b.next((m) => isEvent('join')(m) && m.user.id !== 'bob'), joinEvent('r', { id: 'alice' }))
  a.send({ type: 'message', room: 'r', text: 'hi', user: { id: 'admin' }, id: 2 })
  t.strictSame(await b.next({ type: 'chat' }), { type: 'chat', room: 'r', user: { id: 'alice' }, text: 'hi' })
  a.send({ type: 'leave', room: 'r', user: 'admin', id: 3 })
  t.strictSame(await b.next(isEvent('leave')), leaveEvent('r', { id: 'alice' }))
})

t.test('not_in_room', async (t) => {
  const s = await serve(t)
  const [a, b] = [await s.open(), await s.open()]
  await join(b, 'r')
  checkError(t, await a.request({ type: 'leave', room: 'r' }, 'l1'), 'not_in_room', 'l1')
  checkError(t, await a.request({ type: 'message', room: 'r', text: 'sneak' }, 'm1'), 'not_in_room', 'm1')
  a.send({ type: 'message', room: 'r', text: 'no id' })
  checkError(t, await a.next({ type: 'error' }), 'not_in_room')
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'chat'), [], 'the message was not delivered')
  t.same(b.received.filter(isEvent('leave')), [], 'no leave event for a leave that was refused')
  t.equal(a.ws.readyState, a.ws.OPEN, 'the connection stays open')
})

t.test('invalid_room: the name rule with maxRoomNameLength 5', async (t) => {
  const s = await serve(t, { maxRoomNameLength: 5, rateLimit: false })
  const a = await s.open()
  const bad = ['', 'abcdef', 'a\u0000b', '\u0000', 'a\tb', 'a\nb', '\u001f', 'x\u007f', '\u0080', '\u0085', 'a\u009f', '😀😀😀']
  let i = 0
  for (const room of bad) {
    const id = `bad-${i++}`
    checkError(t, await a.request({ type: 'join', room }, id), 'invalid_room', id)
  }
  t.same(s.app.rooms.rooms(), [], 'none of them was joined')
  const good = ['a', 'abcde', '😀😀', 'a b', '\u00a0', '\u00a0\u00a0\u00a0\u00a0\u00a0', 'é', '+-*/']
  for (const room of good) {
    const answer = await a.request({ type: 'join', room })
    t.equal(answer.type, 'ack', `${JSON.stringify(room)} (${room.length} UTF-16 units) is a valid room name`)
  }
})

t.test('invalid_room: boundary N and N+1 counts UTF-16 units', async (t) => {
  const s = await serve(t, { maxRoomNameLength: 4 })
  const a = await s.open()
  t.equal((await a.request({ type: 'join', room: '😀😀' })).type, 'ack', '2 code points, 4 units: ok')
  checkError(t, await a.request({ type: 'join', room: '😀😀x' }, 'n1'), 'invalid_room', 'n1')
  t.equal((await a.request({ type: 'join', room: 'abcd' })).type, 'ack')
  checkError(t, await a.request({ type: 'join', room: 'abcde' }, 'n2'), 'invalid_room', 'n2')
})

t.test('invalid_room applies to leave and message too', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  checkError(t, await a.request({ type: 'leave', room: '' }, 'x1'), 'invalid_room', 'x1')
  checkError(t, await a.request({ type: 'message', room: 'a\u0001', text: 'hi' }, 'x2'), 'invalid_room', 'x2')
  checkError(t, await a.request({ type: 'message', room: 'r'.repeat(129), text: 'hi' }, 'x3'), 'invalid_room', 'x3')
})

t.test('invalid_message', async (t) => {
  const s = await serve(t, { rateLimit: false })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')

  const withoutId: Array<[string, string]> = [
    ['not JSON', 'hello'],
    ['truncated JSON', '{"type":"join","room":"r"'],
    ['a number', '42'],
    ['a string', '"join"'],
    ['null', 'null'],
    ['true', 'true'],
    ['an array', '[{"type":"join","room":"r"}]'],
    ['an empty array', '[]'],
    ['an object without type', '{"room":"r"}'],
    ['an empty frame', '']
  ]
  for (const [what, raw] of withoutId) {
    a.send(raw)
    const e = await a.next({ type: 'error' })
    checkError(t, e, 'invalid_message')
    t.ok(e.text.startsWith('Invalid message format'), `${what}: text starts with "Invalid message format" (got ${JSON.stringify(e.text)})`)
  }

  const withId: Array<[string, Record<string, unknown>]> = [
    ['unknown type', { type: 'shout', room: 'r' }],
    ['type not a string', { type: 1, room: 'r' }],
    ['join without room', { type: 'join' }],
    ['join with a numeric room', { type: 'join', room: 5 }],
    ['join with a null room', { type: 'join', room: null }],
    ['join with an object room', { type: 'join', room: { name: 'r' } }],
    ['leave with an array room', { type: 'leave', room: ['r'] }],
    ['message without text', { type: 'message', room: 'r' }],
    ['message with numeric text', { type: 'message', room: 'r', text: 5 }],
    ['message with numeric room', { type: 'message', room: 1, text: 'x' }]
  ]
  let n = 0
  for (const [what, frame] of withId) {
    const id = `bad-${n++}`
    const e = await a.request(frame, id)
    checkError(t, e, 'invalid_message', id)
    t.ok(typeof e.text === 'string' && e.text.startsWith('Invalid message format'), `${what}: text starts with "Invalid message format" (got ${JSON.stringify(e.text)})`)
  }
  const schema = await a.request({ type: 'message', room: 'r', text: 5 }, 'schema')
  t.match(schema.text, /^Invalid message format: \/text \S/, `a schema mismatch names the first schema error, at the field (got ${JSON.stringify(schema.text)})`)

  const numericId = await a.request({ type: 'join', room: 5 }, 99)
  t.equal(numericId.id, 99, 'a numeric id is carried back as a number')

  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'chat'), [], 'nothing invalid reached the room')
  t.equal(a.ws.readyState, a.ws.OPEN, 'the connection stays open')
  a.send({ type: 'message', room: 'r', text: 'still works' })
  t.equal((await b.next({ type: 'chat' })).text, 'still works')
})

t.test('too_many_rooms', async (t) => {
  const s = await serve(t, { maxRoomsPerConnection: 2 })
  const [a, b] = [await s.open(), await s.open()]
  await join(b, 'c')
  await join(a, 'a')
  await join(a, 'b')
  checkError(t, await a.request({ type: 'join', room: 'c' }, 'third'), 'too_many_rooms', 'third')
  t.equal((await a.request({ type: 'join', room: 'a' }, 'again')).type, 'ack', 'joining a room already joined at the limit still acks')
  await roundTrip(b)
  t.same(b.received.filter((m) => isEvent('join')(m) && m.user.id === a.welcome.user.id), [], 'no join event for the refused join')
  checkError(t, await a.request({ type: 'message', room: 'c', text: 'x' }, 'msg'), 'not_in_room', 'msg')
  await a.request({ type: 'leave', room: 'a' })
  t.equal((await a.request({ type: 'join', room: 'c' })).type, 'ack', 'after a leave there is space again')
})

t.test('forbidden: authorizeJoin says no', async (t) => {
  const calls: Array<[string, string, boolean]> = []
  const s = await serve(t, {
    authenticate: (token) => ({ id: token }),
    authorizeJoin: async (user, room, request) => {
      calls.push([user.id, room, typeof request.headers === 'object'])
      return user.id === 'admin' || !room.startsWith('admin-')
    }
  })
  const admin = await s.open({ path: '/ws?token=admin' })
  const bob = await s.open({ path: '/ws?token=bob' })
  await join(admin, 'admin-room')
  checkError(t, await bob.request({ type: 'join', room: 'admin-room' }, 'f1'), 'forbidden', 'f1')
  bob.send({ type: 'join', room: 'admin-only' })
  checkError(t, await bob.next({ type: 'error' }), 'forbidden')
  t.equal((await bob.request({ type: 'join', room: 'public' })).type, 'ack')
  await roundTrip(admin)
  t.same(admin.received.filter((m) => isEvent('join')(m) && m.user.id === 'bob'), [], 'no join event for a forbidden join')
  t.same(s.app.rooms.rooms().find((r) => r.room === 'admin-room'), { room: 'admin-room', size: 1 })
  t.same(calls[0], ['admin', 'admin-room', true], 'authorizeJoin gets (user, room, request)')
})

t.test('authorizeJoin is checked at every join', async (t) => {
  let allow = true
  const s = await serve(t, { authorizeJoin: () => allow })
  const a = await s.open()
  await join(a, 'r')
  await a.request({ type: 'leave', room: 'r' })
  allow = false
  checkError(t, await a.request({ type: 'join', room: 'r' }, 'again'), 'forbidden', 'again')
})

t.test('authorizeJoin throwing: internal_error and no join', async (t) => {
  const s = await serve(t, {
    authorizeJoin: (_user, room) => {
      if (room === 'sync-throw') throw new Error('authz exploded at /secret/path')
      if (room === 'async-throw') return Promise.reject(new Error('authz rejected'))
      return true
    }
  })
  const [a, b] = [await s.open(), await s.open()]
  await join(b, 'sync-throw-watch')
  for (const room of ['sync-throw', 'async-throw']) {
    const e = await a.request({ type: 'join', room }, room)
    checkError(t, e, 'internal_error', room)
    t.notMatch(e.text, /authz|\/secret\/path|\n\s+at /, 'no error message or stack in the frame')
    checkError(t, await a.request({ type: 'message', room, text: 'x' }, room + '-m'), 'not_in_room', room + '-m')
  }
  t.same(s.app.rooms.rooms(), [{ room: 'sync-throw-watch', size: 1 }], 'the failed joins left no room')
  t.equal((await a.request({ type: 'join', room: 'fine' })).type, 'ack', 'the connection goes on')
})

t.test('join ack means taken effect: a broadcast right after reaches the joiner', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  await join(a, 'r')
  await s.app.rooms.broadcast('r', { type: 'notice', n: 1 })
  t.strictSame(await a.next({ type: 'notice' }), { type: 'notice', n: 1 })
})
