// Three nodes in separate processes sharing the Redis at 127.0.0.1:6379 (a unique prefix per run):
// chat, REST broadcasts, `except`, `sendToUser` and `members` across nodes, order and exactly-once
// over 1000 messages, and a SIGKILLed node leaving `members` within its presence TTL.
import t from 'tap'
import { Redis } from 'ioredis'
import { connect, eventually, join, type TestClient } from './helpers.js'
import { deleteKeys, get, post, SHARED_REDIS, startNode, uniquePrefix, type ClusterNode } from './fixtures/redis-helpers.js'

type Client = TestClient & { welcome: any }

const prefix = uniquePrefix('cluster')
const nodes: ClusterNode[] = []
const clients: Client[] = []
t.teardown(async () => {
  for (const c of clients) c.ws.terminate()
  await Promise.all(nodes.map(async (n) => await n.stop()))
  await deleteKeys(SHARED_REDIS, prefix)
})

nodes.push(...await Promise.all([1, 2, 3].map(async () => await startNode({ ROOMS_PREFIX: prefix }))))
const [A, B, C] = nodes

async function open (node: ClusterNode, user: string): Promise<Client> {
  const client = await connect(`${node.url}?token=${user}`)
  clients.push(client)
  return client
}

function count (client: Client, match: (m: any) => boolean): number {
  return client.received.filter(match).length
}

const isChat = (text: string) => (m: any) => m?.type === 'chat' && m.text === text
const isNews = (n: number) => (m: any) => m?.type === 'news' && m.n === n

// alice and bob on A, carol on B, dave on C, all in `lobby`.
const alice = await open(A, 'alice')
const bob = await open(A, 'bob')
const carol = await open(B, 'carol')
const dave = await open(C, 'dave')
const lobby = [alice, bob, carol, dave]
for (const client of lobby) await join(client, 'lobby')

t.test('join events and chat cross nodes, exactly once', async (t) => {
  // dave joined last, on C: everybody saw it, whichever node they are on.
  for (const client of lobby) {
    const event = await client.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'dave')
    t.same(event, { type: 'system', event: 'join', room: 'lobby', user: { id: 'dave' }, text: 'User joined room' })
  }
  alice.send({ type: 'message', room: 'lobby', text: 'hello' })
  alice.send({ type: 'message', room: 'lobby', text: 'marker' })
  for (const client of [bob, carol, dave]) {
    t.same(await client.next(isChat('hello')), { type: 'chat', room: 'lobby', user: { id: 'alice' }, text: 'hello' })
    await client.next(isChat('marker'))
    t.equal(count(client, isChat('hello')), 1, `${client.welcome.user.id} got hello once`)
  }
  // A message carol sends from B comes back to alice on A: the bus works both ways.
  carol.send({ type: 'message', room: 'lobby', text: 'from B' })
  t.equal((await alice.next(isChat('from B'))).user.id, 'carol')
  await dave.next(isChat('from B'))
  t.equal(count(alice, (m) => m.type === 'chat' && (m.text === 'hello' || m.text === 'marker')), 0, 'the sender does not get its own message')
})

t.test('a REST broadcast on one node reaches the members on every node once', async (t) => {
  await post(B.http, '/broadcast', { room: 'lobby', message: { type: 'news', n: 1 } })
  await post(B.http, '/broadcast', { room: 'lobby', message: { type: 'news', n: 2 } })
  for (const client of lobby) {
    t.same(await client.next(isNews(1)), { type: 'news', n: 1 })
    await client.next(isNews(2))
    t.equal(count(client, isNews(1)), 1)
  }
})

t.test('except leaves out one connection on another node', async (t) => {
  await post(C.http, '/broadcast', { room: 'lobby', message: { type: 'news', n: 3 }, except: carol.welcome.connectionId })
  await post(C.http, '/broadcast', { room: 'lobby', message: { type: 'news', n: 4 } })
  for (const client of lobby) await client.next(isNews(4))
  for (const client of [alice, bob, dave]) t.equal(count(client, isNews(3)), 1, `${client.welcome.user.id} got it`)
  t.equal(count(carol, isNews(3)), 0, 'carol (on B) was left out')
})

t.test('sendToUser reaches every connection of the user, on every node', async (t) => {
  const eveOnA = await open(A, 'eve')
  const eveOnC = await open(C, 'eve')
  await post(B.http, '/send-to-user', { userId: 'eve', message: { type: 'dm', n: 1 } })
  await post(B.http, '/broadcast-all', { message: { type: 'all', n: 1 } })
  for (const client of [eveOnA, eveOnC]) {
    t.same(await client.next({ type: 'dm' }), { type: 'dm', n: 1 })
  }
  for (const client of [...lobby, eveOnA, eveOnC]) {
    t.same(await client.next({ type: 'all' }), { type: 'all', n: 1 }, 'broadcastAll reaches every node too')
    t.equal(count(client, (m) => m.type === 'dm'), client.welcome.user.id === 'eve' ? 1 : 0)
  }
})

t.test('members lists the members of every node', async (t) => {
  const expected = lobby.map((c) => ({ connectionId: c.welcome.connectionId, user: { id: c.welcome.user.id } }))
  const byId = (a: any, b: any): number => a.connectionId < b.connectionId ? -1 : 1
  for (const node of nodes) {
    const members = await get(node.http, '/members?room=lobby')
    t.same(members.sort(byId), [...expected].sort(byId), `as seen from node ${node.nodeId}`)
  }
  const frank = await open(C, 'frank')
  await join(frank, 'side')
  t.same(await get(A.http, '/members?room=side'), [{ connectionId: frank.welcome.connectionId, user: { id: 'frank' } }])
  // A leave reaches Redis before the leave event it precedes, so once alice saw it, A's answer changed.
  t.equal((await dave.request({ type: 'leave', room: 'lobby' })).type, 'ack')
  await alice.next((m) => m.type === 'system' && m.event === 'leave' && m.user.id === 'dave')
  const after = await get(A.http, '/members?room=lobby')
  t.same(after.map((m: any) => m.user.id).sort(), ['alice', 'bob', 'carol'])
  await join(dave, 'lobby')
})

t.test('1000 messages from one publisher arrive in order, exactly once, on every node', async (t) => {
  const publisher = await open(A, 'pub')
  const receivers = [await open(A, 'r1'), await open(B, 'r2'), await open(C, 'r3')]
  await join(publisher, 'flood')
  for (const client of receivers) await join(client, 'flood')
  const total = 1000
  for (let i = 0; i < total; i++) publisher.send({ type: 'message', room: 'flood', text: String(i) })
  const expected = Array.from({ length: total }, (_, i) => String(i))
  for (const client of receivers) {
    await client.next(isChat(String(total - 1)), 30_000)
    const texts = client.received.filter((m) => m?.type === 'chat' && m.room === 'flood').map((m) => m.text)
    t.same(texts, expected, `${client.welcome.user.id}: ${texts.length} messages, in order, no duplicate`)
  }
  for (const node of nodes) t.equal((await get(node.http, '/stats')).dropped, 0, 'nothing dropped')
})

t.test('the members of a SIGKILLed node leave members() within its presence TTL', async (t) => {
  const presenceTtl = 2000
  const D = await startNode({ ROOMS_PREFIX: prefix, PRESENCE_TTL: String(presenceTtl) })
  nodes.push(D)
  const gina = await open(D, 'gina')
  await join(gina, 'lobby')
  await alice.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'gina')
  const listed = (members: any[]): boolean => members.some((m) => m.connectionId === gina.welcome.connectionId)
  t.ok(listed(await get(A.http, '/members?room=lobby')), 'listed while D lives')
  // D keeps its entries for 2 s, the others for 10 s: D's join must not cut the room's lifetime
  // to D's, or the live nodes' members would expire with it.
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => redis.disconnect())
  // The others' presenceTtl is the default, 10 s.
  for (const key of [`${prefix}:{r:lobby}:members`, `${prefix}:{r:lobby}:nodes`]) {
    const lifetime = await redis.pttl(key)
    t.ok(lifetime > presenceTtl && lifetime <= 10_000, `the room's ${key.slice(key.lastIndexOf(':') + 1)} live on at the longest TTL (${lifetime} ms left)`)
  }

  const killedAt = Date.now()
  await D.kill()
  await eventually(async () => listed(await get(A.http, '/members?room=lobby')) ? undefined : true, 'gina to leave members()', presenceTtl + 5000, 100)
  const elapsed = Date.now() - killedAt
  // The heartbeat key expires presenceTtl after D's last heartbeat (every presenceTtl / 4, so at
  // most that long before the kill): not sooner, and at most presenceTtl after; the rest is polling slack.
  t.ok(elapsed >= presenceTtl / 2 && elapsed <= presenceTtl + 1500, `gone ${elapsed} ms after SIGKILL (presenceTtl ${presenceTtl} ms)`)
  // Past D's TTL, the live nodes' members are all still listed, from every node.
  await new Promise((resolve) => setTimeout(resolve, presenceTtl))
  for (const node of [A, B, C]) {
    const left = await get(node.http, '/members?room=lobby')
    t.same(left.map((m: any) => m.user.id).sort(), ['alice', 'bob', 'carol', 'dave'], 'the live nodes\' members stay')
  }
  // The cluster goes on without D.
  alice.send({ type: 'message', room: 'lobby', text: 'after D' })
  await dave.next(isChat('after D'))
})
