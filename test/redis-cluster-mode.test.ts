// CONTRACT §12: three plugin nodes, each with its own ioredis Cluster client, on a Redis Cluster this
// test starts (three masters, one replica each). Rooms are picked so their slots sit on different
// masters. §7 (chat, broadcast, except, sendToUser, broadcastAll, members), §9 (offsets identical on
// every node, recovery on another node), §10 (batched presence counts across nodes), §11
// (joinUser, disconnectUser across nodes), and that rooms really travel over sharded pub/sub.
import t from 'tap'
import { eventually, join } from './helpers.js'
import { slotOf } from './fixtures/redis-cluster-server.js'
import { startClusterPlugins } from './fixtures/cluster-plugins.js'

const { cluster, prefix, keys, nodes, addNode, open } = await startClusterPlugins(t, 'cluster-mode', {
  history: { rooms: (room) => room.startsWith('h-') },
  presenceEvents: (room) => room.startsWith('p-') ? 'batched' : 'each',
  presenceInterval: 100
})
const [A, B, C] = nodes

/** `count` room names starting with `stem` whose slots are served by `count` different masters. */
async function spreadRooms (stem: string, count: number): Promise<string[]> {
  const byMaster = new Map<number, string>()
  for (let i = 0; byMaster.size < count; i++) {
    const room = `${stem}${i}`
    const master = await cluster.masterOf(slotOf(keys.roomChannel(room)))
    if (!byMaster.has(master)) byMaster.set(master, room)
  }
  return [...byMaster.values()]
}

const isChat = (text: string) => (m: any) => m?.type === 'chat' && m.text === text

t.test('§7 across three nodes, rooms on three masters: chat, broadcast, except, members — exactly once', async (t) => {
  const rooms = await spreadRooms('lobby-', 3)
  const alice = await open(A, 'alice')
  const bob = await open(B, 'bob')
  const carol = await open(C, 'carol')
  for (const room of rooms) {
    for (const client of [alice, bob, carol]) await join(client, room)
    alice.send({ type: 'message', room, text: `hello ${room}` })
    for (const client of [bob, carol]) {
      t.same(await client.next(isChat(`hello ${room}`)), { type: 'chat', room, user: { id: 'alice' }, text: `hello ${room}` })
    }
    await B.app.rooms.broadcast(room, { type: 'news', room, n: 1 }, { except: carol.welcome.connectionId })
    await alice.next((m) => m.type === 'news' && m.room === room)
    await bob.next((m) => m.type === 'news' && m.room === room)
    carol.send({ type: 'message', room, text: `marker ${room}` })
    await alice.next(isChat(`marker ${room}`))
    await bob.next(isChat(`marker ${room}`))
    t.equal(carol.received.filter((m) => m.type === 'news' && m.room === room).length, 0, 'except skipped carol on C')
    for (const client of [bob, carol]) t.equal(client.received.filter(isChat(`hello ${room}`)).length, 1, 'exactly once')

    const members = await C.app.rooms.members(room)
    t.same(members.map((m) => m.user.id).sort(), ['alice', 'bob', 'carol'], `members of ${room} from C`)

    // Sharded: the room's channel is an SSUBSCRIBE on the master of its slot, not plain pub/sub.
    const master = await cluster.masterOf(slotOf(keys.roomChannel(room)))
    t.ok((await cluster.command(master, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:*`) as string[]).includes(keys.roomChannel(room)))
    t.same(await cluster.command(master, 'PUBSUB', 'CHANNELS', `${prefix}:{*`), [], 'no plain subscription to a room channel')
  }
})

t.test('§7 sendToUser and broadcastAll reach every node', async (t) => {
  const dan = [await open(A, 'dan'), await open(C, 'dan')]
  const erin = await open(B, 'erin')
  await B.app.rooms.sendToUser('dan', { type: 'dm', text: 'for dan' })
  for (const client of dan) t.same(await client.next((m) => m.type === 'dm'), { type: 'dm', text: 'for dan' })
  t.equal(erin.received.filter((m) => m.type === 'dm').length, 0)
  await C.app.rooms.broadcastAll({ type: 'notice', text: 'everyone' })
  for (const client of [...dan, erin]) await client.next((m) => m.type === 'notice' && m.text === 'everyone')
})

// Rooms and users travel over sharded pub/sub (SSUBSCRIBE), broadcastAll over plain pub/sub. Redis 7.0
// answers an SUNSUBSCRIBE with the number of shard channels left on the connection, 0 even when a
// plain subscription remains there; ioredis then leaves subscriber mode and drops that connection's
// messages. So on every master in turn: a node's only shard channel there is unsubscribed, then
// broadcastAll from another node must still reach it.
t.test('§7 broadcastAll still reaches a node after it unsubscribed its last room on each master', async (t) => {
  const D = await addNode() // a fresh node: no channel of an earlier test stays subscribed on a master
  const shardSubscribers = async (channel: string): Promise<number> => {
    const [, count] = await cluster.command(await cluster.masterOf(slotOf(channel)), 'PUBSUB', 'SHARDNUMSUB', channel) as [string, number]
    return Number(count)
  }
  const rooms = await spreadRooms('plain-after-sunsub-', 3)
  for (const [i, room] of rooms.entries()) {
    const master = await cluster.masterOf(slotOf(keys.roomChannel(room)))
    // A user whose own channel is on another master: the room is D's only shard channel on this one.
    let user = `plain-${i}-0`
    for (let n = 1; await cluster.masterOf(slotOf(keys.userChannel(user))) === master; n++) user = `plain-${i}-${n}`
    const client = await open(D, user)
    await join(client, room)
    t.equal((await client.request({ type: 'leave', room })).type, 'ack', `left ${room}`)
    await eventually(async () => await shardSubscribers(keys.roomChannel(room)) === 0 ? true : undefined, `D's SUNSUBSCRIBE of ${room} done`)
    await A.app.rooms.broadcastAll({ type: 'notice', text: `after ${room}` })
    t.same(await client.next((m) => m.type === 'notice'), { type: 'notice', text: `after ${room}` }, `reached D after it left ${room} (master ${master})`)
    // Gone with its user channel: the next master starts from no shard channel of D either.
    client.ws.terminate()
    await eventually(async () => await shardSubscribers(keys.userChannel(user)) === 0 ? true : undefined, `D's SUNSUBSCRIBE of ${user}`)
  }
})

t.test('§9 history rooms: one offset order on every node, and recovery on another node', async (t) => {
  const [room] = await spreadRooms('h-room-', 1)
  const a = await open(A, 'ha')
  const b = await open(B, 'hb')
  const c = await open(C, 'hc')
  for (const client of [a, b, c]) t.equal((await client.request({ type: 'join', room })).type, 'ack')
  const acks = await Promise.all([a, b, c].map(async (client, i) => await client.request({ type: 'message', room, text: `m${i}` })))
  t.same(acks.map((ack) => ack.data.offset).sort(), [1, 2, 3], 'each sender got its own offset')
  await A.app.rooms.broadcast(room, { type: 'chat', room, text: 'from REST' })
  const views = await Promise.all([a, b, c].map(async (client, i) => {
    await client.next((m) => m.type === 'chat' && m.text === 'from REST')
    const received = client.received.filter((m) => m.type === 'chat').map((m) => [m.offset, m.text])
    t.same(received.map(([offset]) => offset), [1, 2, 3, 4].filter((n) => n !== acks[i].data.offset), 'the others\' messages, in offset order')
    // With its own message (a sender gets the ack, not the chat), every member has the same history.
    return [...received, [acks[i].data.offset, `m${i}`]].sort((x, y) => Number(x[0]) - Number(y[0]))
  }))
  t.same(views[1], views[0])
  t.same(views[2], views[0])

  // c leaves, two more messages, c rejoins on A with `since`: the two are replayed before the ack.
  const { epoch } = (await b.request({ type: 'join', room })).data
  c.ws.terminate()
  b.send({ type: 'message', room, text: 'missed 1' })
  b.send({ type: 'message', room, text: 'missed 2' })
  await a.next(isChat('missed 2'))
  const back = await open(A, 'hc')
  const ack = await back.request({ type: 'join', room, since: { epoch, offset: 4 } })
  t.strictSame(ack.data, { recovered: true, epoch, offset: 6 })
  t.same(back.received.filter((m) => m.type === 'chat').map((m) => [m.offset, m.text]), [[5, 'missed 1'], [6, 'missed 2']])
  t.same((await C.app.rooms.history(room, { after: 4 })).messages.map((m: any) => m.offset), [5, 6], 'history() on a third node')
})

t.test('§10 batched presence: the size counts members on every node', async (t) => {
  const [room] = await spreadRooms('p-room-', 1)
  const members = [await open(A, 'p1'), await open(A, 'p2'), await open(B, 'p3'), await open(C, 'p4')]
  for (const client of members) await join(client, room)
  for (const client of members) {
    await eventually(() => client.received.some((m) => m.event === 'presence' && m.size === 4) ? true : undefined, 'a presence frame of size 4', 10_000)
  }
  const answer = await members[3].request({ type: 'members', room })
  t.equal(answer.data.size, 4)
  t.same(answer.data.members.map((m: any) => m.user.id).sort(), ['p1', 'p2', 'p3', 'p4'])
  members[0].ws.terminate()
  await eventually(() => members[2].received.some((m) => m.event === 'presence' && m.size === 3 && m.left.some((u: any) => u.id === 'p1')) ? true : undefined, 'p1 left, size 3 on B', 10_000)
})

t.test('§11 joinUser and disconnectUser reach the user on every node', async (t) => {
  const [room] = await spreadRooms('ctl-', 1)
  const frank = [await open(B, 'frank'), await open(C, 'frank')]
  const grace = await open(A, 'grace')
  await join(grace, room)
  await A.app.rooms.joinUser('frank', room)
  for (const client of frank) await client.next((m) => m.type === 'system' && m.event === 'join' && m.room === room && m.user.id === 'frank')
  await eventually(async () => (await A.app.rooms.members(room)).length === 3 ? true : undefined, 'both frank connections in the room')
  grace.send({ type: 'message', room, text: 'hi frank' })
  for (const client of frank) await client.next(isChat('hi frank'))
  await C.app.rooms.disconnectUser('frank', { code: 4321, reason: 'bye' })
  for (const client of frank) t.same(await client.closed, { code: 4321, reason: 'bye' })
  t.equal(grace.ws.readyState, grace.ws.OPEN, 'another user stays')
})
