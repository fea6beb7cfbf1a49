// CONTRACT §9 on one node (the in-memory history): offsets, epochs, joins with `since`, the ack
// data, fastify.rooms.history(), and every refusal, through real sockets.
import t from 'tap'
import { join, roundTrip, serve, type TestClient } from './helpers.js'

const isChat = (m: any): boolean => m?.type === 'chat'
const chats = (client: TestClient): any[] => client.received.filter(isChat)

async function joinWith (client: TestClient, room: string, since?: unknown): Promise<any> {
  const frame: Record<string, unknown> = { type: 'join', room }
  if (since !== undefined) frame.since = since
  return await client.request(frame)
}

t.test('without the history option: no offset, since is ignored', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  const b = await s.open()
  await join(a, 'r')
  const ack = await joinWith(b, 'r', { epoch: 'x', offset: 0 })
  t.strictSame(ack, { type: 'ack', id: ack.id }, 'a plain ack, no data')
  a.send({ type: 'message', room: 'r', text: 'hi' })
  t.strictSame(await b.next(isChat), { type: 'chat', room: 'r', user: a.welcome.user, text: 'hi' })
})

t.test('every message of a history room carries the next offset; the sender learns it in the ack', async (t) => {
  const s = await serve(t, { history: {} })
  const a = await s.open()
  const b = await s.open()
  const first = await joinWith(a, 'r')
  t.type(first.data.epoch, 'string')
  t.ok(first.data.epoch.length > 0, 'the epoch is a non-empty string')
  t.strictSame(first.data, { epoch: first.data.epoch, offset: 0 }, 'nothing published yet: offset 0')
  const second = await joinWith(b, 'r')
  t.strictSame(second.data, { epoch: first.data.epoch, offset: 0 })

  const ack1 = await a.request({ type: 'message', room: 'r', text: 'one' })
  t.strictSame(ack1, { type: 'ack', id: ack1.id, data: { offset: 1 } })
  await s.app.rooms.broadcast('r', { type: 'news', n: 2 })
  const ack3 = await b.request({ type: 'message', room: 'r', text: 'three' })
  t.strictSame(ack3.data, { offset: 3 })

  t.strictSame(await b.next(isChat), { type: 'chat', room: 'r', user: a.welcome.user, text: 'one', offset: 1 })
  t.strictSame(await b.next({ type: 'news' }), { type: 'news', n: 2, room: 'r', offset: 2 }, 'a broadcast without room names its room')
  t.strictSame(await a.next({ type: 'news' }), { type: 'news', n: 2, room: 'r', offset: 2 })
  t.strictSame(await a.next(isChat), { type: 'chat', room: 'r', user: b.welcome.user, text: 'three', offset: 3 })
  await roundTrip(a)
  t.equal(chats(a).filter((m) => m.text === 'one').length, 0, 'the sender does not get its own message')

  // Join and leave events carry no offset and are not kept.
  const c = await s.open()
  await join(c, 'r')
  const joinEvent = await a.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === c.welcome.user.id)
  t.notOk('offset' in joinEvent, 'system events have no offset')
  const kept = await s.app.rooms.history('r')
  t.same(kept.messages.map((m) => m.offset), [1, 2, 3], 'only the messages are kept')
  t.equal(kept.offset, 3)
  t.equal(kept.epoch, first.data.epoch)
})

t.test('join with since: the missed messages, in order, before the ack; then live', async (t) => {
  const s = await serve(t, { history: {} })
  const sender = await s.open()
  await join(sender, 'r')
  const client = await s.open()
  const { data } = await joinWith(client, 'r')
  for (let i = 1; i <= 3; i++) await sender.request({ type: 'message', room: 'r', text: `m${i}` })
  await client.next((m) => isChat(m) && m.text === 'm3')
  await client.close()

  // Away: two more are published.
  await sender.request({ type: 'message', room: 'r', text: 'm4' })
  await s.app.rooms.broadcast('r', { type: 'news', text: 'm5' })

  const back = await s.open()
  const ackPromise = joinWith(back, 'r', { epoch: data.epoch, offset: 3 })
  const ack = await ackPromise
  t.strictSame(ack.data, { recovered: true, epoch: data.epoch, offset: 5 })
  const beforeAck = back.received.slice(1, back.received.indexOf(ack))
  t.same(beforeAck.filter((m) => m.type !== 'system').map((m) => [m.offset, m.text]), [[4, 'm4'], [5, 'm5']],
    'the missed messages came before the ack, in order, as first sent')
  t.strictSame(beforeAck.find((m) => m.offset === 4), { type: 'chat', room: 'r', user: sender.welcome.user, text: 'm4', offset: 4 })

  await sender.request({ type: 'message', room: 'r', text: 'm6' })
  t.strictSame((await back.next(isChat)).offset, 4)
  t.strictSame((await back.next(isChat)).offset, 6, 'and then the live flow, without a gap or a repeat')
})

t.test('since at the last offset recovers nothing and is true', async (t) => {
  const s = await serve(t, { history: {} })
  const a = await s.open()
  await join(a, 'r')
  await s.app.rooms.broadcast('r', { type: 'n' })
  const kept = await s.app.rooms.history('r')
  const b = await s.open()
  const ack = await joinWith(b, 'r', { epoch: kept.epoch, offset: 1 })
  t.strictSame(ack.data, { recovered: true, epoch: kept.epoch, offset: 1 })
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'n'), [], 'nothing replayed')
})

t.test('a since that cannot be served gets recovered: false and nothing replayed', async (t) => {
  const s = await serve(t, { history: { size: 3 } })
  const a = await s.open()
  await join(a, 'r')
  for (let i = 1; i <= 5; i++) await s.app.rooms.broadcast('r', { type: 'n', i })
  const { epoch } = await s.app.rooms.history('r')
  const cases: Array<[string, unknown]> = [
    ['another epoch', { epoch: 'not-' + epoch, offset: 4 }],
    ['past the size (offset 1 is gone)', { epoch, offset: 1 }],
    ['ahead of the room', { epoch, offset: 99 }]
  ]
  let last = 5
  for (const [what, since] of cases) {
    const b = await s.open()
    const ack = await joinWith(b, 'r', since)
    t.strictSame(ack.data, { recovered: false, epoch, offset: last }, what)
    await roundTrip(b)
    t.same(b.received.filter((m) => m.type === 'n'), [], `${what}: nothing replayed`)
    await s.app.rooms.broadcast('r', { type: 'after', what })
    t.strictSame(await b.next({ type: 'after' }), { type: 'after', what, room: 'r', offset: ++last }, `${what}: live after the ack`)
  }
  // The size bound holds exactly: size 3 keeps the last three offsets (6..8) now.
  t.same((await s.app.rooms.history('r')).messages.map((m) => m.offset), [6, 7, 8])
})

t.test('messages older than ttlMs are not kept: recovered false', async (t) => {
  const s = await serve(t, { history: { ttlMs: 200 } })
  const a = await s.open()
  await join(a, 'r')
  await s.app.rooms.broadcast('r', { type: 'n' })
  const { epoch } = await s.app.rooms.history('r')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const b = await s.open()
  t.strictSame((await joinWith(b, 'r', { epoch, offset: 0 })).data, { recovered: false, epoch, offset: 1 },
    'the room keeps its epoch while it has members, but the message expired')
  t.same((await s.app.rooms.history('r')).messages, [], 'history() lists no expired message')
})

t.test('a malformed since is invalid_message', async (t) => {
  const s = await serve(t, { history: {} })
  const c = await s.open()
  const bad = [null, 'e:1', 5, [], { epoch: 1, offset: 0 }, { epoch: 'e' }, { offset: 0 }, { epoch: 'e', offset: -1 },
    { epoch: 'e', offset: 1.5 }, { epoch: 'e', offset: '1' }]
  for (const since of bad) {
    const answer = await c.request({ type: 'join', room: 'r', since })
    t.equal(answer.type, 'error', `since ${JSON.stringify(since)}`)
    t.equal(answer.code, 'invalid_message')
    t.match(answer.text, /^Invalid message format: \/since/)
  }
  t.same(s.app.rooms.rooms(), [], 'no join happened')
})

t.test('history.rooms picks the history rooms; since is ignored elsewhere', async (t) => {
  const s = await serve(t, { history: { rooms: (room) => room.startsWith('h:') } })
  const a = await s.open()
  const b = await s.open()
  await join(a, 'h:1')
  await join(a, 'plain')
  t.same((await joinWith(b, 'plain', { epoch: 'e', offset: 3 })).data, undefined, 'a plain join: no data')
  t.same(typeof (await joinWith(b, 'h:1')).data.epoch, 'string')
  a.send({ type: 'message', room: 'plain', text: 'x' })
  a.send({ type: 'message', room: 'h:1', text: 'y' })
  t.notOk('offset' in await b.next((m) => isChat(m) && m.text === 'x'))
  t.equal((await b.next((m) => isChat(m) && m.text === 'y')).offset, 1)
  await t.rejects(s.app.rooms.history('plain'), { code: 'FST_WS_ROOMS_NO_HISTORY' }, 'history() of a room without history rejects')
})

t.test('broadcast to a history room takes only JSON objects without their own offset, and names the room', async (t) => {
  const s = await serve(t, { history: {} })
  const a = await s.open()
  await join(a, 'r')
  for (const bad of ['text', 42, null, [1, 2], true, { type: 'x', offset: 7 }]) {
    await t.rejects(s.app.rooms.broadcast('r', bad), TypeError, `${JSON.stringify(bad)} is refused`)
  }
  await s.app.rooms.broadcast('r', {})
  t.strictSame(await a.next((m) => m.offset === 1), { room: 'r', offset: 1 }, 'an empty object gets its room and offset')
  await s.app.rooms.broadcast('r', { nested: { offset: 'theirs' } })
  t.strictSame(await a.next((m) => m.offset === 2), { nested: { offset: 'theirs' }, room: 'r', offset: 2 }, 'a nested offset is the message\'s own business')
  await s.app.rooms.broadcast('r', { type: 'x', room: 'r' })
  t.strictSame(await a.next((m) => m.offset === 3), { type: 'x', room: 'r', offset: 3 }, 'a payload naming its own room is sent as it is')
  for (const other of [{ type: 'x', room: 'elsewhere' }, { type: 'x', room: 7 }]) {
    await t.rejects(s.app.rooms.broadcast('r', other), TypeError, `${JSON.stringify(other)} (another room) is refused`)
  }
  t.equal((await s.app.rooms.history('r')).offset, 3, 'the refused ones took no offset')
})

t.test('fastify.rooms.history(room, { after, limit })', async (t) => {
  const s = await serve(t, { history: { size: 10 } })
  for (let i = 1; i <= 12; i++) await s.app.rooms.broadcast('r', { type: 'n', i })
  const all = await s.app.rooms.history('r')
  t.equal(all.offset, 12)
  t.same(all.messages.map((m) => m.offset), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'the last size messages, oldest first')
  t.strictSame(all.messages[0], { type: 'n', i: 3, room: 'r', offset: 3 })
  t.same((await s.app.rooms.history('r', { after: 8 })).messages.map((m) => m.offset), [9, 10, 11, 12])
  t.same((await s.app.rooms.history('r', { after: 8, limit: 2 })).messages.map((m) => m.offset), [9, 10])
  t.same((await s.app.rooms.history('r', { limit: 0 })).messages, [])
  const empty = await s.app.rooms.history('nobody-published-here')
  t.strictSame({ offset: empty.offset, messages: empty.messages }, { offset: 0, messages: [] })
  t.type(empty.epoch, 'string')
  for (const options of [{ after: -1 }, { after: 1.5 }, { limit: -2 }, { limit: 'x' }]) {
    await t.rejects(s.app.rooms.history('r', options as never), TypeError, JSON.stringify(options))
  }
})

t.test('a room nobody is in frees its history after ttlMs: a new epoch, offsets from 1', async (t) => {
  const s = await serve(t, { history: { ttlMs: 150 } })
  await s.app.rooms.broadcast('gone', { type: 'n' })
  const before = await s.app.rooms.history('gone')
  t.equal(before.offset, 1)
  await new Promise((resolve) => setTimeout(resolve, 600))
  const after = await s.app.rooms.history('gone')
  t.not(after.epoch, before.epoch, 'the history was freed: its epoch is new')
  t.equal(after.offset, 0)
})

t.test('bad history options fail register naming the option', async (t) => {
  const cases: Array<[unknown, string]> = [
    [true, 'history'], ['yes', 'history'], [{ size: 0 }, 'history.size'], [{ size: 1.5 }, 'history.size'],
    [{ ttlMs: -1 }, 'history.ttlMs'], [{ rooms: 'all' }, 'history.rooms'], [{ length: 3 }, 'history.length']
  ]
  for (const [history, name] of cases) {
    await t.rejects(serve(t, { history: history as never }), { code: 'FST_WS_ROOMS_INVALID_OPTION', message: new RegExp(`"${name.replace('.', '\\.')}"`) }, name)
  }
})
