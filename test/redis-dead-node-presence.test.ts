// Presence when a node dies without cleaning up (SIGKILL, power loss) or is cut off from Redis for
// longer than presenceTtl: the first live node whose heartbeat finds the node's lease expired
// purges its members and announces them as left, once, to every node that has members in the room
// (`leave` events in `each` rooms, `left` and the new `size` in `batched` presence frames). A node
// that was only cut off and comes back announces its members as joined again.
import t from 'tap'
import { eventually, roundTrip, type StartedServer } from './helpers.js'
import { RedisServer, startNode, uniquePrefix, type ClusterNode } from './fixtures/redis-helpers.js'
import { type Client, RedisNodes } from './fixtures/redis-nodes.js'
import { TcpProxy } from './fixtures/tcp-proxy.js'

const PRESENCE_TTL = 2000
const EACH = 'each-room'
const BATCHED = 'batched-room'

const redis = await RedisServer.start()
const proxy = await TcpProxy.start(redis.port)
const prefix = uniquePrefix('dead-node')
const processes: ClusterNode[] = []
const group = new RedisNodes(t, redis.url, prefix, async () => {
  await proxy.close()
  await redis.dispose()
})
// Teardowns run last-registered first: the node processes stop before the group's nodes close.
t.teardown(async () => { for (const n of processes) await n.stop() })
const open = group.open.bind(group)

async function node (url = redis.url): Promise<StartedServer> {
  return await group.node({
    presenceEvents: (room) => room.startsWith('each-') ? 'each' : 'batched',
    presenceInterval: 100
  }, { redis: { url, presenceTtl: PRESENCE_TTL } })
}

async function joinBoth (client: Client): Promise<void> {
  for (const room of [EACH, BATCHED]) {
    const reply = await client.request({ type: 'join', room })
    if (reply.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(reply)}`)
  }
}

const events = (client: Client, event: 'join' | 'leave', user: string): number =>
  client.received.filter((m) => m?.type === 'system' && m.event === event && m.room === EACH && m.user?.id === user).length
const presenceFrames = (client: Client): any[] =>
  client.received.filter((m) => m?.type === 'system' && m.event === 'presence' && m.room === BATCHED)
const listed = (client: Client, list: 'joined' | 'left', user: string): number =>
  presenceFrames(client).flatMap((f) => f[list]).filter((u: any) => u.id === user).length
const lastSize = (client: Client): number | undefined => presenceFrames(client).at(-1)?.size

// Watchers on two in-process nodes, B and C.
const B = await node()
const C = await node()
const watchers = [await open(B.url, 'b1'), await open(B.url, 'b2'), await open(C.url, 'c1')]
for (const w of watchers) await joinBoth(w)

t.test('a SIGKILLed node: its members leave once, on every node, in each and batched rooms', async (t) => {
  const A = await startNode({ REDIS_URL: redis.url, ROOMS_PREFIX: prefix, PRESENCE_TTL: String(PRESENCE_TTL) })
  processes.push(A)
  const ghosts = ['ghost1', 'ghost2', 'ghost3']
  for (const user of ghosts) await joinBoth(await open(A.url, user))
  for (const w of watchers) {
    await eventually(() => ghosts.every((g) => events(w, 'join', g) === 1) ? true : undefined, `${w.welcome.user.id} to see the ghosts join`)
    await eventually(() => lastSize(w) === 6 ? true : undefined, `${w.welcome.user.id} to see size 6`)
  }

  await A.kill()
  for (const w of watchers) {
    const who = w.welcome.user.id
    await eventually(() => ghosts.every((g) => events(w, 'leave', g) > 0) ? true : undefined, `${who} to get a leave event per ghost`, 3 * PRESENCE_TTL)
    await eventually(() => ghosts.every((g) => listed(w, 'left', g) > 0) && lastSize(w) === 3 ? true : undefined,
      `${who} to get the ghosts in left and size 3`, 3 * PRESENCE_TTL)
  }
  // Every live node runs four heartbeats in one presenceTtl: a second announcement (by another
  // node, or by the same node again) would have arrived by then.
  await new Promise((resolve) => setTimeout(resolve, PRESENCE_TTL))
  for (const w of watchers) {
    await roundTrip(w)
    const who = w.welcome.user.id
    t.same(ghosts.map((g) => events(w, 'leave', g)), [1, 1, 1], `${who}: one leave event per ghost`)
    t.same(ghosts.map((g) => listed(w, 'left', g)), [1, 1, 1], `${who}: each ghost in left once`)
    t.equal(lastSize(w), 3, `${who}: the size counts the live members only`)
  }
  for (const server of [B, C]) {
    t.same((await server.app.rooms.members(EACH)).map((m) => m.user.id).sort(), ['b1', 'b2', 'c1'], 'members() lists the live members')
  }
})

t.test('a node cut off from Redis for longer than presenceTtl: its members leave, and join again when it is back', async (t) => {
  const D = await node(proxy.url)
  const dora = await open(D.url, 'dora')
  await joinBoth(dora)
  for (const w of watchers) {
    await eventually(() => events(w, 'join', 'dora') === 1 && listed(w, 'joined', 'dora') === 1 ? true : undefined, `${w.welcome.user.id} to see dora join`)
  }
  proxy.refuse(true)
  proxy.cutAll()
  for (const w of watchers) {
    await eventually(() => events(w, 'leave', 'dora') === 1 && listed(w, 'left', 'dora') === 1 && lastSize(w) === 3 ? true : undefined,
      `${w.welcome.user.id} to see dora leave`, 3 * PRESENCE_TTL)
  }
  proxy.refuse(false)
  for (const w of watchers) {
    await eventually(() => events(w, 'join', 'dora') === 2 && listed(w, 'joined', 'dora') === 2 && lastSize(w) === 4 ? true : undefined,
      `${w.welcome.user.id} to see dora join again`, 3 * PRESENCE_TTL)
  }
  t.same((await B.app.rooms.members(EACH)).map((m) => m.user.id).sort(), ['b1', 'b2', 'c1', 'dora'], 'dora is listed again')
  dora.send({ type: 'message', room: EACH, text: 'still here' })
  for (const w of watchers) t.equal((await w.next((m) => m.type === 'chat' && m.text === 'still here')).user.id, 'dora', 'and her messages arrive')
})
