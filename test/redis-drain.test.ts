// A drain on one of two nodes over Redis (the shared Redis, under this test's own prefix): the
// drained node's clients move to the other node through a balancer and recover their history
// rooms there with nothing lost or duplicated while messages keep flowing; the members left on
// the other node hear them leave (and come back); and the drained node leaves nothing of its own
// in Redis: no presence entry, no lease, no room subscription.
import t from 'tap'
import { Redis } from 'ioredis'
import { connect as connectClient, type RoomsClient } from '../lib/client/index.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import { KeyNames } from '../lib/adapters/redis-keys.js'
import { balancer, fastReconnect, Recorder } from './client-helpers.js'
import { connect, eventually, join, startServer, until, type StartedServer, type TestClient } from './helpers.js'
import { deleteKeys, SHARED_REDIS, uniquePrefix } from './fixtures/redis-helpers.js'

const ROOMS = ['h-1', 'h-2']
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5']
const prefix = uniquePrefix('drain')
const redis = new Redis(SHARED_REDIS)
const servers: StartedServer[] = []
const raw: TestClient[] = []
t.teardown(async () => {
  for (const c of raw) c.ws.terminate()
  for (const s of servers) await s.app.close()
  await deleteKeys(SHARED_REDIS, prefix)
  redis.disconnect()
})

async function node (): Promise<StartedServer> {
  const server = await startServer({
    authenticate: (token) => ({ id: token }),
    rateLimit: false,
    history: { size: 1000, ttlMs: 60_000, rooms: (room) => room.startsWith('h-') },
    presenceEvents: 'each',
    adapter: redisAdapter({ url: SHARED_REDIS, prefix })
  })
  servers.push(server)
  return server
}

/** Every hash field and value under our prefix that names `nodeId`. */
async function tracesOf (nodeId: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    cursor = next
    for (const key of keys) {
      if (await redis.type(key) !== 'hash') continue
      for (const [field, value] of Object.entries(await redis.hgetall(key))) {
        if (field.includes(nodeId) || value.includes(nodeId)) found.push(`${key} ${field}`)
      }
    }
  } while (cursor !== '0')
  return found
}

t.test('drain A: its clients recover on B, nothing lost or duplicated, presence follows, no trace of A left', async (t) => {
  const A = await node()
  const B = await node()
  const lb = balancer(A.port)
  const clients: Array<{ user: string, client: RoomsClient<any>, events: Recorder }> = []
  for (const user of USERS) {
    const client = connectClient(A.url, {
      WebSocket: lb.WebSocket, token: user, tokenTransport: 'query', reconnect: fastReconnect, restartJitterMs: 300, presence: false
    })
    t.teardown(() => client.close())
    clients.push({ user, client, events: new Recorder(client, ['recovery']) })
  }
  for (const { client } of clients) for (const room of ROOMS) await client.join(room)
  t.equal(A.app.rooms.stats().connections, USERS.length, 'every client starts on A')

  const watcher = await connect(`${B.url}?token=watcher`)
  const sender = await connect(`${B.url}?token=sender`)
  raw.push(watcher, sender)
  for (const room of ROOMS) await join(sender, room)
  await join(watcher, 'h-1')

  // Messages keep flowing from B for the whole move.
  const sent: Record<string, string[]> = { 'h-1': [], 'h-2': [] }
  const publishing = { on: true }
  const publisher = (async () => {
    for (let n = 0; publishing.on || n < 10; n++) {
      for (const room of ROOMS) {
        const ack = await sender.request({ type: 'message', room, text: `m${n}` })
        if (ack.type !== 'ack') throw new Error(JSON.stringify(ack))
        sent[room].push(`m${n}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()

  await until(() => sent['h-2'].length >= 5, 5000, 'the first messages')
  lb.sendTo(B.port)
  await A.app.rooms.drain({ overMs: 1000 })
  t.equal(A.app.rooms.stats().connections, 0, 'A has no connection left')
  t.same(A.app.rooms.rooms(), [], 'nor any room')
  // The last leaves' writes may still be on their way to Redis when drain() resolves.
  await eventually(async () => (await tracesOf(A.app.rooms.nodeId)).length === 0 ? true : undefined, 'no trace of A', 5000)
  t.pass('no presence entry or lease of A in Redis')
  const keys = new KeyNames(prefix)
  for (const room of ROOMS) {
    const subscribers = async (): Promise<number> => Number(((await redis.pubsub('NUMSUB', keys.roomChannel(room))) as [string, number])[1])
    await eventually(async () => await subscribers() === 1 ? true : undefined, `${room} to have one subscriber`, 5000)
    t.pass(`${room}: only B is subscribed`)
  }

  for (const { events } of clients) {
    await events.next('open', (info) => info.reconnected === true)
  }
  await until(() => B.app.rooms.stats().connections === USERS.length + 2, 10_000, 'every client on B')
  for (const { user, events } of clients) {
    for (const room of ROOMS) {
      const [recovery] = await events.next('recovery', (info) => info.room === room)
      t.equal(recovery.recovered, true, `${user} recovered ${room}`)
    }
  }
  publishing.on = false
  await publisher

  for (const { user, events } of clients) {
    for (const room of ROOMS) {
      const texts = (): string[] => events.events('chat').map(([m]) => m).filter((m) => m.room === room).map((m) => m.text)
      await until(() => texts().length >= sent[room].length, 10_000, `${user} to have every message of ${room}`)
      t.same(texts(), sent[room], `${user} ${room}: all ${sent[room].length} messages, once each, in order`)
    }
  }

  // The watcher joined after the clients: what it hears of them is the move.
  const heard = (user: string): string[] => watcher.received
    .filter((m) => m?.type === 'system' && (m.event === 'join' || m.event === 'leave') && m.room === 'h-1' && m.user?.id === user)
    .map((m) => m.event)
  for (const user of USERS) {
    t.ok(heard(user).includes('leave'), `the watcher on B heard ${user} leave (${heard(user).join(', ')})`)
    // (In either order: a client that came back at once may join on B before A has its socket's end.)
    t.ok(heard(user).includes('join'), `and ${user} join again, on B`)
  }
  const members = await B.app.rooms.members('h-1')
  t.same(members.map((m) => m.user.id).sort(), [...USERS, 'sender', 'watcher'].sort(), 'members: each user once')
  t.same(members.filter((m) => !m.connectionId.startsWith(B.app.rooms.nodeId)), [], 'every member is on B')

  await A.app.close()
  t.same(await tracesOf(A.app.rooms.nodeId), [], 'still no trace of A once it is closed')
})
