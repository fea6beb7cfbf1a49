// History rooms across three nodes over one redis-server this test starts (CONTRACT §9 with an
// adapter): one order per room whoever published, recovery on another node than the one the
// client left, gap repair on a node whose subscriber was cut, publishing refused while Redis is
// gone, and the epoch changing (members closed 1012, recovery false) when Redis lost the keys.
import t from 'tap'
import { eventually, until } from './helpers.js'
import { LogCapture, RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'
import { type Client, RedisNodes } from './fixtures/redis-nodes.js'

// Persistent (append-only, fsync always): a restart keeps the history, as a production Redis would.
const redis = await RedisServer.start({ persistent: true })
const prefix = uniquePrefix('history-nodes')
const group = new RedisNodes(t, redis.url, prefix, async () => { await redis.dispose() })
const open = group.open.bind(group)

const logs = [new LogCapture(), new LogCapture(), new LogCapture()]
const nodes = await Promise.all(logs.map(async (log) => await group.node({
  history: { size: 50, ttlMs: 60_000, rooms: (room) => room.startsWith('h-') }
}, {
  redis: { presenceTtl: 2000 },
  logs: log,
  setup: (app) => {
    app.post<{ Params: { room: string }, Body: unknown }>('/broadcast/:room', async (request) => {
      await app.rooms.broadcast(request.params.room, request.body)
      return { ok: true }
    })
  }
})))
const [A, B, C] = nodes

async function joinRoom (client: Client, room: string, since?: { epoch: string, offset: number }): Promise<any> {
  const reply = await client.request(since === undefined ? { type: 'join', room } : { type: 'join', room, since })
  if (reply.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(reply)}`)
  return reply.data
}

const chats = (client: Client, room: string): any[] => client.received.filter((m) => m?.type === 'chat' && m.room === room)
const offsets = (client: Client, room: string): number[] => chats(client, room).map((m) => m.offset)
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('one order per room across nodes, whoever published', async (t) => {
  const room = 'h-order'
  const members = [await open(A, 'a1'), await open(A, 'a2'), await open(B, 'b1'), await open(C, 'c1')]
  const acks = []
  for (const m of members) acks.push(await joinRoom(m, room))
  t.same(acks.map((a) => a.offset), [0, 0, 0, 0], 'every join is acked at offset 0 of an empty room')
  t.equal(new Set(acks.map((a) => a.epoch)).size, 1, 'one epoch on every node')
  // Clients on every node and REST broadcasts on two nodes publish at once.
  const perSender = 25
  const sent: Array<Promise<any>> = []
  for (let i = 0; i < perSender; i++) {
    for (const [j, m] of members.entries()) sent.push(m.request({ type: 'message', room, text: `${j}:${i}` }))
    sent.push(fetch(`http://127.0.0.1:${B.port}/broadcast/${room}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'news', n: i }) }))
  }
  const replies = await Promise.all(sent)
  const ackOffsets = replies.filter((r) => r?.type === 'ack').map((r) => r.data.offset)
  t.equal(ackOffsets.length, members.length * perSender, 'every message acked')
  t.equal(new Set(ackOffsets).size, ackOffsets.length, 'each ack carries its own offset')
  const total = perSender * (members.length + 1)
  // A sender is not sent its own message: each member gets all but its own 25.
  const withOffset = (m: Client): any[] => m.received.filter((f) => typeof f?.offset === 'number')
  for (const m of members) await until(() => withOffset(m).length >= total - perSender, 10_000, `${total - perSender} messages to reach ${m.welcome.user.id}`)
  const ownOffsets = (m: Client, j: number): number[] => replies.filter((r, k) => r?.type === 'ack' && k % (members.length + 1) === j).map((r) => r.data.offset)
  const merged = [...withOffset(members[0]).map((f) => f.offset), ...ownOffsets(members[0], 0)].sort((x, y) => x - y)
  t.same(merged, range(1, total), `${total} messages: offsets 1..${total}, the others' and a1's own acked ones, each once`)
  const inOrder = [...withOffset(members[0]), ...withOffset(members[1]).filter((f) => f.type === 'chat' && f.user.id === 'a1')]
    .sort((x, y) => x.offset - y.offset)
  t.same(withOffset(members[0]).map((f) => f.offset), withOffset(members[0]).map((f) => f.offset).sort((x, y) => x - y), 'a1 got them in offset order')
  for (const m of members.slice(1)) {
    // Every member gets the same messages in the same order, except its own (the sender is not echoed).
    const own = m.welcome.user.id
    const expected = inOrder.filter((f) => !(f.type === 'chat' && f.user.id === own)).map((f) => JSON.stringify(f))
    const got = m.received.filter((f) => typeof f?.offset === 'number').map((f) => JSON.stringify(f))
    t.same(got, expected, `${own} saw the one order`)
  }
  const page = await C.app.rooms.history(room, { after: total - 3 })
  t.same(page.messages.map((m) => m.offset), [total - 2, total - 1, total], 'history() on any node reads the same stream')
})

t.test('a client that left node A recovers on node C what was published meanwhile', async (t) => {
  const room = 'h-recover'
  const stay = await open(B, 'stay')
  await joinRoom(stay, room)
  const leaving = await open(A, 'mobile')
  const joined = await joinRoom(leaving, room)
  stay.send({ type: 'message', room, text: 'before' })
  const before = await leaving.next((m) => m.type === 'chat' && m.text === 'before')
  t.equal(before.offset, joined.offset + 1, 'the first message gets the next offset')
  leaving.ws.terminate()
  await leaving.closed
  for (let i = 0; i < 10; i++) await stay.request({ type: 'message', room, text: `missed ${i}` })
  const back = await open(C, 'mobile')
  const ack = await joinRoom(back, room, { epoch: joined.epoch, offset: before.offset })
  t.same(ack, { recovered: true, epoch: joined.epoch, offset: before.offset + 10 }, 'recovered, up to the last offset')
  const recovered = chats(back, room)
  t.same(recovered.map((m) => m.text), range(0, 9).map((i) => `missed ${i}`), 'the 10 missed messages, in order, before the ack')
  t.same(recovered.map((m) => m.offset), range(before.offset + 1, before.offset + 10), 'with their offsets')
  stay.send({ type: 'message', room, text: 'after' })
  const after = await back.next((m) => m.type === 'chat' && m.text === 'after')
  t.equal(after.offset, before.offset + 11, 'then the live flow goes on from there, once')
  t.equal(chats(back, room).filter((m) => m.text === 'after').length, 1)
})

t.test('a node whose subscriber was cut repairs the gap from the stream', async (t) => {
  const room = 'h-gap'
  const sender = await open(A, 'gap-sender')
  const watcher = await open(B, 'gap-watcher')
  await joinRoom(sender, room)
  await joinRoom(watcher, room)
  const bId = (B.app.rooms as unknown as { nodeId: string }).nodeId
  let sent = 0
  const timer = setInterval(() => { sender.send({ type: 'message', room, text: String(sent++) }) }, 5)
  await eventually(() => chats(watcher, room).length >= 5 ? true : undefined, 'traffic to flow')
  // Cut B's subscriber again and again for 300 ms: what A publishes meanwhile never reaches B live.
  const subName = `fastify-ws-rooms-${bId}-sub`
  let cuts = 0
  const sentBefore = sent
  const cutUntil = Date.now() + 300
  while (Date.now() < cutUntil) {
    if (await redis.killClient(subName)) cuts++
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.ok(cuts >= 1 && sent - sentBefore >= 20, `B's subscriber cut ${cuts} times while A sent ${sent - sentBefore} messages`)
  clearInterval(timer)
  await until(() => chats(watcher, room).length === sent, 10_000, 'every message to reach B')
  t.same(chats(watcher, room).map((m) => Number(m.text)), range(0, sent - 1), `all ${sent} messages, once, in order, on ${bId}`)
  const list = offsets(watcher, room)
  t.same(list, range(list[0], list[0] + sent - 1), 'offsets contiguous')
})

t.test('without Redis a history room refuses to publish; a plain room goes on locally', async (t) => {
  const member = await open(A, 'outage-member')
  const other = await open(A, 'outage-other')
  for (const c of [member, other]) { await joinRoom(c, 'h-outage'); await joinRoom(c, 'plain') }
  const last = (await member.request({ type: 'message', room: 'h-outage', text: 'before' })).data.offset
  // It comes back to every node from Redis: let it arrive before Redis goes.
  await other.next((m) => m.type === 'chat' && m.text === 'before')
  const logged = logs[0].records.length // an earlier test's outage is logged too
  await redis.stop('SIGKILL')
  await eventually(() => logs[0].matching('redis adapter: Redis unavailable', undefined, logged).length > 0 ? true : undefined, 'A to notice')
  const refused = await member.request({ type: 'message', room: 'h-outage', text: 'x' }, 'refused')
  t.match(refused, { type: 'error', id: 'refused', code: 'unavailable', text: String }, 'a message to a history room gets error unavailable')
  await t.rejects(A.app.rooms.broadcast('h-outage', { type: 'news' }), 'broadcast to a history room rejects')
  t.same(await member.request({ type: 'message', room: 'plain', text: 'still local' }, 'plain'), { type: 'ack', id: 'plain' })
  t.equal((await other.next((m) => m.type === 'chat' && m.room === 'plain')).text, 'still local', 'a plain room still delivers locally')
  t.same(chats(other, 'h-outage').map((m) => m.text), ['before'], 'nothing refused reached anyone')
  await redis.start()
  await eventually(() => logs[0].matching('redis adapter: Redis is back', undefined, logged).length > 0 ? true : undefined, 'A to be back', 15_000)
  const reply = await member.request({ type: 'message', room: 'h-outage', text: 'back' }, 'back')
  t.equal(reply.type, 'ack', 'the history room takes messages again')
  t.equal(reply.data.offset, last + 1, 'with the next offset of the history Redis kept')
  t.equal((await other.next((m) => m.type === 'chat' && m.text === 'back')).offset, last + 1, 'and the members get it')
})

t.test('when Redis lost the keys, the epoch changes: members are closed 1012 and do not recover', async (t) => {
  const room = 'h-lost'
  const member = await open(C, 'lost-member')
  const position = await joinRoom(member, room)
  await member.request({ type: 'message', room, text: 'kept for now' })
  const keys = await redis.command('KEYS', `${prefix}:{r:${room}}:*`) as string[]
  t.ok(keys.length > 0, 'the room has keys')
  await redis.command('DEL', ...keys)
  // The next message starts a new history; the node sees the new epoch and says so.
  const poster = await open(A, 'lost-poster')
  await joinRoom(poster, room)
  await poster.request({ type: 'message', room, text: 'new history' })
  const closed = await member.closed
  t.same(closed, { code: 1012, reason: 'History lost: rejoin to recover' }, 'the member is told its history is gone')
  const again = await open(B, 'lost-member')
  const ack = await joinRoom(again, room, { epoch: position.epoch, offset: position.offset + 1 })
  t.equal(ack.recovered, false, 'recovery is refused')
  t.not(ack.epoch, position.epoch, 'under a new epoch')
})
