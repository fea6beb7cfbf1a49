// Room names and user ids that differ only in lone surrogates, across two nodes over Redis. A JS
// string may hold a lone surrogate ("\ud800" is a legal JSON escape, and a room name is any 1..N
// UTF-16 code units), but UTF-8 cannot: written as they are, "\ud800", "\udfff" and "\ufffd" all
// became the bytes of U+FFFD, one key and one channel, so their members heard each other's chats,
// join events, history and members() entries, and disconnectUser("\ud800") closed user "\ufffd".
import t from 'tap'
import { closedWithin, eventually, type StartedServer } from './helpers.js'
import { deleteKeys, SHARED_REDIS, uniquePrefix } from './fixtures/redis-helpers.js'
import { type Client, RedisNodes } from './fixtures/redis-nodes.js'

// The three names one UTF-8 encoding would merge: two lone surrogates and U+FFFD itself.
const NAMES = ['\ud800', '\udfff', '\ufffd']
// Tokens travel in the URL, where a lone surrogate cannot: each token stands for a user id.
const USER_OF: Record<string, string> = { d800: '\ud800', dfff: '\udfff', fffd: '\ufffd' }
const TOKENS = Object.keys(USER_OF)

const prefix = uniquePrefix('name-encoding')
const group = new RedisNodes(t, SHARED_REDIS, prefix, async () => { await deleteKeys(SHARED_REDIS, prefix) })
const open = group.open.bind(group)

async function node (): Promise<StartedServer> {
  return await group.node({
    authenticate: (token) => ({ id: USER_OF[token] ?? token }),
    presenceEvents: 'each',
    history: { size: 10, ttlMs: 60_000, rooms: (room) => room.startsWith('h') }
  })
}

const [A, B] = [await node(), await node()]

async function joinRoom (client: Client, room: string): Promise<any> {
  const reply = await client.request({ type: 'join', room }, 'j1')
  if (reply.type !== 'ack') throw new Error(`join ${JSON.stringify(room)}: ${JSON.stringify(reply)}`)
  return reply.data
}

const connectionIds = (members: Array<{ connectionId: string }>): string[] => members.map((m) => m.connectionId).sort()

t.test('rooms whose names differ only in lone surrogates keep their chats, events and members apart across nodes', async (t) => {
  const onB = await Promise.all(NAMES.map(async (_, i) => await open(B, `b${i}`)))
  const onA = await Promise.all(NAMES.map(async (_, i) => await open(A, `a${i}`)))
  for (const [i, room] of NAMES.entries()) await joinRoom(onB[i], room)
  for (const [i, room] of NAMES.entries()) await joinRoom(onA[i], room)
  for (const [i, room] of NAMES.entries()) onA[i].send({ type: 'message', room, text: `to room ${i}` })

  for (const [i, room] of NAMES.entries()) {
    const chat = await onB[i].next((m) => m.type === 'chat')
    t.same(chat, { type: 'chat', room, user: { id: `a${i}` }, text: `to room ${i}` }, `room ${i}'s member on B gets its room's chat first`)
    // Node A published the three chats in this order: a chat of another room would have come first.
    const about = onB[i].received.filter((m) => m.type === 'chat' || m.event === 'join').map((m) => m.user.id)
    t.same(about, [`b${i}`, `a${i}`, `a${i}`], `room ${i}'s member on B heard of its own room only (its join, a${i}'s join and chat)`)
    const everywhere = [await A.app.rooms.members(room), await B.app.rooms.members(room)].map(connectionIds)
    const expected = [onA[i].welcome.connectionId, onB[i].welcome.connectionId].sort()
    t.same(everywhere, [expected, expected], `members(room ${i}) on either node lists that room's two members`)
    const answer = await onB[i].request({ type: 'members', room })
    t.equal(answer.data.size, 2, `the members request in room ${i} counts 2`)
  }
})

t.test('history rooms whose names differ only in lone surrogates keep their own streams', async (t) => {
  const rooms = NAMES.map((name) => `h${name}`)
  const onB = await Promise.all(rooms.map(async (_, i) => await open(B, `hb${i}`)))
  for (const [i, room] of rooms.entries()) {
    const ack = await joinRoom(onB[i], room)
    t.equal(ack.offset, 0, `history room ${i} starts empty`)
  }
  await A.app.rooms.broadcast(rooms[0], { type: 'note', n: 0 })
  const note = await onB[0].next((m) => m.type === 'note')
  t.strictSame(note, { type: 'note', n: 0, room: rooms[0], offset: 1 }, 'the member on B gets it with offset 1, naming its own room')
  for (const [i, room] of rooms.entries()) {
    const page = await B.app.rooms.history(room)
    t.same(page.messages, i === 0 ? [note] : [], `history(${i}) read on B holds ${i === 0 ? 'the note' : 'nothing'}`)
  }
  await A.app.rooms.broadcast(rooms[2], { type: 'note', n: 2 })
  t.same(await onB[2].next((m) => m.type === 'note'), { type: 'note', n: 2, room: rooms[2], offset: 1 }, 'the third room counts its own offsets')
  t.equal(onB[1].received.filter((m) => m.type === 'note').length, 0, 'the second room got no note')
})

t.test('users whose ids differ only in lone surrogates are told apart by sendToUser, joinUser and disconnectUser', async (t) => {
  const users = await Promise.all(TOKENS.map(async (token) => await open(B, token)))
  t.same(users.map((u) => u.welcome.user.id), NAMES, 'the three users as authenticate returned them')
  for (const [i, id] of NAMES.entries()) await A.app.rooms.sendToUser(id, { type: 'note', to: i })
  for (const [i, user] of users.entries()) {
    t.same(await user.next((m) => m.type === 'note'), { type: 'note', to: i }, `user ${i} on B gets its own note first`)
    t.same(user.received.filter((m) => m.type === 'note'), [{ type: 'note', to: i }], 'and no other user\'s (A sent them in order)')
  }

  await A.app.rooms.joinUser(NAMES[1], 'joined-by-id')
  const listed = await eventually(async () => {
    const members = await B.app.rooms.members('joined-by-id')
    return members.length > 0 ? members : undefined
  }, 'joinUser to reach node B')
  t.same(connectionIds(listed), [users[1].welcome.connectionId], 'joinUser moved only its user')

  await A.app.rooms.disconnectUser(NAMES[0], { code: 4100, reason: 'Bye' })
  t.same(await closedWithin(users[0], 5000), { code: 4100, reason: 'Bye' }, 'disconnectUser closed its user on B')
  await A.app.rooms.sendToUser(NAMES[2], { type: 'still-here' })
  await users[2].next((m) => m.type === 'still-here')
  t.ok(users.slice(1).every((u) => u.ws.readyState === u.ws.OPEN), 'the other two users are still connected')
})

t.test('a broadcast whose except holds a NUL (no connection id does) reaches other nodes as the message, not garbled', async (t) => {
  // Between nodes the fields of a message are separated by NUL: this one used to cut `except`
  // short and send members the rest of it glued to the payload, as a frame that is not JSON.
  const [plain, history] = [await open(B, 'nul-plain'), await open(B, 'nul-history')]
  await joinRoom(plain, 'nul')
  await joinRoom(history, 'h-nul')
  await A.app.rooms.broadcast('nul', { type: 'note', n: 1 }, { except: `${plain.welcome.connectionId}\u0000{"type":"forged"}` })
  t.same(await plain.next((m) => m.type !== 'system'), { type: 'note', n: 1 }, 'the member gets the message itself')
  await A.app.rooms.broadcast('h-nul', { type: 'note', n: 2 }, { except: 'x\u0000y' })
  t.same(await history.next((m) => m.type !== 'system'), { type: 'note', n: 2, room: 'h-nul', offset: 1 }, 'in a history room too')
})
