// Presence (§10) and cluster-wide control (§11) across three nodes over Redis: batched presence
// frames with the room's size across nodes, exact once churn stops; `each` events from other nodes;
// the members request across nodes under membersLimit; disconnectUser, joinUser and leaveUser
// reaching a user's connections on every node; and a control call that cannot reach the other
// nodes (Redis gone) rejecting instead of pretending.
import t from 'tap'
import { eventually, type StartedServer } from './helpers.js'
import { deleteKeys, RedisServer, SHARED_REDIS, uniquePrefix } from './fixtures/redis-helpers.js'
import { type Client, RedisNodes } from './fixtures/redis-nodes.js'
import type { WsRoomsOptions } from '../types/index.js'

const prefix = uniquePrefix('presence-nodes')
const group = new RedisNodes(t, SHARED_REDIS, prefix, async () => { await deleteKeys(SHARED_REDIS, prefix) })
const open = group.open.bind(group)

async function node (nodes = group, options: WsRoomsOptions = {}): Promise<StartedServer> {
  return await nodes.node({
    authenticate: (token) => ({ id: token.split('.')[0] }),
    presenceEvents: (room) => room.startsWith('each-') ? 'each' : 'batched',
    presenceInterval: 100,
    membersLimit: 4,
    ...options
  })
}

const [A, B, C] = [await node(), await node(), await node()]

async function joinRoom (client: Client, room: string): Promise<void> {
  const reply = await client.request({ type: 'join', room })
  if (reply.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(reply)}`)
}

const presenceFrames = (client: Client, room: string): any[] =>
  client.received.filter((m) => m?.type === 'system' && m.event === 'presence' && m.room === room)
const lastSize = (client: Client, room: string): number | undefined => presenceFrames(client, room).at(-1)?.size
const ids = (users: any[]): string[] => users.map((u) => u.id).sort()

t.test('batched: presence frames carry joins on other nodes and the size across nodes', async (t) => {
  const room = 'big'
  const a = await open(A, 'pa')
  await joinRoom(a, room)
  const first = await a.next((m) => m.type === 'system' && m.event === 'presence' && m.room === room)
  t.same(first, { type: 'system', event: 'presence', room, joined: [{ id: 'pa' }], left: [], size: 1 }, 'the joiner is in joined of its first presence frame')
  const others = [await open(B, 'pb1'), await open(B, 'pb2'), await open(C, 'pc')]
  for (const c of others) await joinRoom(c, room)
  await eventually(() => lastSize(a, room) === 4 ? true : undefined, 'A to see 4 members')
  const heard = presenceFrames(a, room).flatMap((f) => f.joined)
  t.same(ids(heard), ['pa', 'pb1', 'pb2', 'pc'], 'A heard of every join, its own and the other nodes\'')
  t.equal(a.received.filter((m) => m?.type === 'system' && (m.event === 'join' || m.event === 'leave')).length, 0, 'no per-member events in a batched room')
  for (const c of others) await eventually(() => lastSize(c, room) === 4 ? true : undefined, `${c.welcome.user.id} to see size 4`)

  // Churn on every node, then quiet: the size is exact everywhere once it stops.
  const churners: Client[] = []
  for (let i = 0; i < 9; i++) {
    const c = await open([A, B, C][i % 3], `churn${i}`)
    churners.push(c)
    await joinRoom(c, room)
    if (i % 2 === 0) await c.request({ type: 'leave', room })
  }
  const expected = 4 + churners.filter((_, i) => i % 2 === 1).length
  for (const c of [a, ...others]) {
    await eventually(() => lastSize(c, room) === expected ? true : undefined, `${c.welcome.user.id} to see size ${expected} after the churn`, 10_000)
  }
  for (const server of [A, B, C]) {
    t.equal((await server.app.rooms.members(room)).length, expected, 'members() counts the same on every node')
  }
  t.pass(`every node converged on ${expected} members`)
})

t.test('each: join and leave events from other nodes', async (t) => {
  const room = 'each-small'
  const a = await open(A, 'ea')
  await joinRoom(a, room)
  const b = await open(B, 'eb')
  await joinRoom(b, room)
  t.same(await a.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'eb'),
    { type: 'system', event: 'join', room, user: { id: 'eb' }, text: 'User joined room' }, 'a join on B is a join event on A')
  await b.request({ type: 'leave', room })
  t.same(await a.next((m) => m.type === 'system' && m.event === 'leave' && m.user.id === 'eb'),
    { type: 'system', event: 'leave', room, user: { id: 'eb' }, text: 'User left room' }, 'a leave on B is a leave event on A')
  t.equal(presenceFrames(a, room).length, 0, 'no presence frames in an each room')
})

t.test('the members request answers for every node, capped by membersLimit', async (t) => {
  const room = 'listed'
  const members = [await open(A, 'm1'), await open(B, 'm2'), await open(C, 'm3'), await open(B, 'm4'), await open(C, 'm5')]
  for (const m of members) await joinRoom(m, room)
  const answer = await eventually(async () => {
    const reply = await members[0].request({ type: 'members', room })
    return reply.data?.size === 5 ? reply : undefined
  }, 'the size across nodes to reach 5')
  t.equal(answer.data.members.length, 4, 'at most membersLimit (4) members listed')
  t.ok(answer.data.members.every((m: any) => typeof m.connectionId === 'string' && /^m[1-5]$/.test(m.user.id)), 'members of the room, from several nodes')
  t.ok(new Set(answer.data.members.map((m: any) => m.connectionId)).size === 4, 'each listed once')
  t.same(ids((await B.app.rooms.members(room)).map((m) => m.user)), ['m1', 'm2', 'm3', 'm4', 'm5'], 'fastify.rooms.members() on any node lists all five')
  t.equal((await C.app.rooms.members(room, { limit: 2 })).length, 2, 'and honours a limit')
  const outsider = await open(A, 'outsider')
  t.match(await outsider.request({ type: 'members', room }, 'no'), { type: 'error', id: 'no', code: 'not_in_room' }, 'a non-member gets not_in_room')
})

t.test('disconnectUser closes the user\'s connections on every node', async (t) => {
  const onA = await open(A, 'dana.1')
  const onC = await open(C, 'dana.2')
  const bystander = await open(A, 'bystander')
  // Issued on B, where dana has no connection.
  await B.app.rooms.disconnectUser('dana', { code: 4321, reason: 'Banned' })
  t.same(await onA.closed, { code: 4321, reason: 'Banned' }, 'on A')
  t.same(await onC.closed, { code: 4321, reason: 'Banned' }, 'on C')
  t.equal(bystander.ws.readyState, bystander.ws.OPEN, 'other users stay connected')
  const again = await open(B, 'dana.3')
  await C.app.rooms.disconnectUser('dana')
  t.same(await again.closed, { code: 4000, reason: 'Disconnected by the server' }, 'default code and reason')
  await t.resolves(A.app.rooms.disconnectUser('nobody-here'), 'a user with no connection anywhere resolves')
})

t.test('joinUser and leaveUser move the user\'s connections on every node, with the usual events', async (t) => {
  const room = 'each-moved'
  const watcher = await open(B, 'watcher')
  await joinRoom(watcher, room)
  const onA = await open(A, 'eve.1')
  const onC = await open(C, 'eve.2')
  await B.app.rooms.joinUser('eve', room)
  for (const c of [onA, onC]) {
    await eventually(() => c.received.some((m) => m?.type === 'system' && m.event === 'join' && m.room === room && m.user.id === 'watcher') || c.received.some((m) => m?.type === 'system' && m.room === room) ? true : undefined, 'eve to be in the room')
  }
  await eventually(() => watcher.received.filter((m) => m?.type === 'system' && m.event === 'join' && m.user.id === 'eve').length === 2 ? true : undefined, 'two join events for eve')
  watcher.send({ type: 'message', room, text: 'hi eve' })
  for (const c of [onA, onC]) t.equal((await c.next((m) => m.type === 'chat' && m.text === 'hi eve')).room, room, 'the moved connection gets the room\'s messages')
  await A.app.rooms.leaveUser('eve', room)
  await eventually(() => watcher.received.filter((m) => m?.type === 'system' && m.event === 'leave' && m.user.id === 'eve').length === 2 ? true : undefined, 'two leave events for eve')
  t.same(ids((await B.app.rooms.members(room)).map((m) => m.user)), ['watcher'], 'eve is out of the room everywhere')
})

t.test('a control call that cannot reach the other nodes rejects', async (t) => {
  const redis = await RedisServer.start()
  const own = new RedisNodes(t, redis.url, uniquePrefix('control-down'), () => undefined)
  // No first-frame cut (30 s by default) while this slow case waits for Redis to go and come back.
  const D = await node(own, { firstFrameTimeout: 0 })
  const E = await node(own, { firstFrameTimeout: 0 })
  const onE = await open(E, 'fay')
  await redis.stop('SIGKILL')
  await eventually(async () => {
    try {
      await D.app.rooms.disconnectUser('fay')
      return undefined
    } catch (err) {
      return err
    }
  }, 'disconnectUser to reject while Redis is gone').then((err: any) => {
    t.equal(err.code, 'FST_WS_ROOMS_UNAVAILABLE', 'rejects with the unavailable error')
  })
  t.equal(onE.ws.readyState, onE.ws.OPEN, 'nothing was done on the node it could not reach')
  await redis.start()
  await eventually(async () => {
    try {
      await D.app.rooms.disconnectUser('fay')
      return true
    } catch {
      return undefined
    }
  }, 'disconnectUser to work again once Redis is back', 15_000)
  t.equal((await onE.closed).code, 4000, 'and then it reaches the other node')
  await redis.dispose()
})
