// Redis faults, against a redis-server this test starts on a free port: frozen (SIGSTOP, SIGCONT)
// and killed then restarted on the same port, both mid-traffic. The two nodes are never restarted:
// local delivery goes on, one error is logged per outage, cross-node delivery comes back by itself,
// and every message sent meanwhile is either delivered (in order, once) or counted in `dropped`.
import t, { type Test } from 'tap'
import { connect, eventually, join, startServer, type StartedServer, type TestClient } from './helpers.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import { LogCapture, RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'

type Client = TestClient & { welcome: any }
const OUTAGE = 'redis adapter: Redis unavailable'
const BACK = 'redis adapter: Redis is back'
const presenceTtl = 2000 // heartbeat every 500 ms: a frozen Redis is noticed within about a second

const redis = await RedisServer.start()
const prefix = uniquePrefix('faults')
const clients: Client[] = []
const servers: StartedServer[] = []
t.teardown(async () => {
  for (const c of clients) c.ws.terminate()
  for (const s of servers) await s.app.close()
  await redis.stop()
})

async function node (logs: LogCapture): Promise<StartedServer> {
  const server = await startServer({
    authenticate: (token) => ({ id: token }),
    rateLimit: false,
    adapter: redisAdapter({ url: redis.url, prefix, presenceTtl })
  }, undefined, { logger: { level: 'info', stream: logs.stream } })
  servers.push(server)
  return server
}

async function open (server: StartedServer, user: string): Promise<Client> {
  const client = await connect(`${server.url}?token=${user}`)
  clients.push(client)
  return client
}

const logsA = new LogCapture()
const logsB = new LogCapture()
const A = await node(logsA)
const B = await node(logsB)
const sender = await open(A, 'sender') // publishes
const local = await open(A, 'local') // same node as the sender
const remote = await open(B, 'remote') // the other node
for (const client of [sender, local, remote]) await join(client, 'r')
await sender.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'remote')

const chatTexts = (client: Client, tag: string): number[] =>
  client.received.filter((m) => m?.type === 'chat' && typeof m.text === 'string' && m.text.startsWith(tag + ':'))
    .map((m) => Number(m.text.slice(tag.length + 1)))

/**
 * The sender's messages in one phase, numbered `tag:0`, `tag:1`, …: steady traffic every 10 ms, plus
 * probes (more of the same numbered stream) to find out when cross-node delivery is back.
 */
class Stream {
  readonly tag: string
  sent = 0
  private timer: NodeJS.Timeout | undefined
  constructor (tag: string) { this.tag = tag }

  send (): void { sender.send({ type: 'message', room: 'r', text: `${this.tag}:${this.sent++}` }) }
  start (): void { this.timer = setInterval(() => this.send(), 10) }
  stop (): void { clearInterval(this.timer) }

  /** Keep sending until the remote node gets a message sent from now on, and B's messages reach A. */
  async crossNodeBack (): Promise<void> {
    const from = this.sent
    await eventually(() => {
      this.send()
      return chatTexts(remote, this.tag).some((n) => n >= from) ? true : undefined
    }, 'cross-node delivery A → B to resume', 20_000, 100)
    remote.send({ type: 'message', room: 'r', text: `${this.tag}-back` })
    await sender.next((m) => m.type === 'chat' && m.text === `${this.tag}-back`, 10_000)
  }

  /** After stop(): the local member got everything, the remote one got the rest or it was counted. */
  async check (t: Test, droppedBefore: { a: number, b: number }): Promise<void> {
    await local.next((m) => m.type === 'chat' && m.text === `${this.tag}:${this.sent - 1}`)
    // One more after the last, so a gap at the end of the remote stream would show.
    await this.crossNodeBack()
    const sent = this.sent
    t.same(chatTexts(local, this.tag), Array.from({ length: sent }, (_, i) => i), `local delivery: all ${sent} messages, in order`)
    const got = chatTexts(remote, this.tag)
    t.ok(got.every((n, i) => i === 0 || n > got[i - 1]), 'across nodes: in order, no duplicate')
    const dropped = droppedNow() - droppedBefore.a - droppedBefore.b
    const detail = `A ${A.app.rooms.stats().dropped - droppedBefore.a}, B ${B.app.rooms.stats().dropped - droppedBefore.b}`
    t.ok(got.length + dropped >= sent, `across nodes: ${got.length} delivered + ${dropped} counted as dropped (${detail}) >= ${sent} sent`)
  }
}

function droppedNow (): number {
  return A.app.rooms.stats().dropped + B.app.rooms.stats().dropped
}

function droppedSoFar (): { a: number, b: number } {
  return { a: A.app.rooms.stats().dropped, b: B.app.rooms.stats().dropped }
}

t.test('Redis frozen (SIGSTOP) then thawed (SIGCONT)', async (t) => {
  const droppedBefore = droppedSoFar()
  const stream = new Stream('s')
  stream.start()
  await eventually(() => chatTexts(remote, 's').length >= 5 ? true : undefined, 'traffic to flow')
  redis.signal('SIGSTOP')
  await eventually(() => logsA.matching(OUTAGE).length > 0 ? true : undefined, 'A to notice the frozen Redis')
  const frozenAt = stream.sent
  await eventually(() => stream.sent >= frozenAt + 20 ? true : undefined, 'traffic during the outage')

  // A node keeps serving while Redis is frozen: new connections, joins, local chat.
  const late = await open(A, 'late')
  await join(late, 'r2')
  t.pass('a join during the freeze is acknowledged')
  const members = await A.app.rooms.members('r2')
  t.same(members.map((m) => m.user.id), ['late'], 'members() answers with what this node knows')

  redis.signal('SIGCONT')
  await stream.crossNodeBack()
  stream.stop()
  await stream.check(t, droppedBefore)
  t.ok(droppedNow() > droppedBefore.a + droppedBefore.b, 'what could not be published was counted')
  await eventually(() => logsA.matching(BACK).length > 0 ? true : undefined, 'A to log that Redis is back')
  t.equal(logsA.matching(OUTAGE, 50).length, 1, 'A logged one error for the outage')
  t.equal(logsA.matching(BACK, 30).length, 1, 'and one line when it was over')
})

t.test('Redis killed and restarted on the same port', async (t) => {
  const outagesBefore = { a: logsA.matching(OUTAGE).length, b: logsB.matching(OUTAGE).length }
  const droppedBefore = droppedSoFar()
  const stream = new Stream('k')
  stream.start()
  await eventually(() => chatTexts(remote, 'k').length >= 5 ? true : undefined, 'traffic to flow')
  await redis.stop('SIGKILL')
  await eventually(() => logsA.matching(OUTAGE).length > outagesBefore.a && logsB.matching(OUTAGE).length > outagesBefore.b ? true : undefined,
    'both nodes to notice')
  // The end of this outage is a BACK logged from here on (an earlier one may land late).
  const noticedAt = { a: logsA.records.length, b: logsB.records.length }
  const killedAt = stream.sent
  await eventually(() => chatTexts(local, 'k').length >= killedAt + 20 ? true : undefined, 'local delivery while Redis is gone')
  t.pass('local delivery goes on without Redis')

  // A leave while Redis is gone must not leave a ghost in members() afterwards.
  const ghost = await open(B, 'ghost')
  await join(ghost, 'r')
  t.equal((await ghost.request({ type: 'leave', room: 'r' })).type, 'ack')

  await redis.start()
  await stream.crossNodeBack()
  stream.stop()
  await stream.check(t, droppedBefore)
  t.ok(A.app.rooms.stats().dropped > 0, 'A counted what it could not publish')

  // Presence was re-registered on the new (empty) Redis, without the member that left meanwhile.
  const users = await eventually(async () => {
    const ids = (await A.app.rooms.members('r')).map((m) => m.user.id).sort()
    return ids.includes('remote') ? ids : undefined
  }, 'B to re-register its presence')
  t.same(users, ['local', 'remote', 'sender'])

  // Subscriptions made after the restart work both ways, and nobody was restarted.
  const fresh = await open(B, 'fresh')
  await join(fresh, 'r')
  await sender.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'fresh')
  await B.app.rooms.sendToUser('local', { type: 'dm' })
  t.same(await local.next({ type: 'dm' }), { type: 'dm' }, 'sendToUser across nodes after the restart')

  await eventually(() => logsA.matching(BACK, undefined, noticedAt.a).length > 0 && logsB.matching(BACK, undefined, noticedAt.b).length > 0 ? true : undefined,
    'both nodes to log that Redis is back')
  t.equal(logsA.matching(OUTAGE).length - outagesBefore.a, 1, 'A logged one line for the outage, not one per message or retry')
  t.equal(logsB.matching(OUTAGE).length - outagesBefore.b, 1, 'so did B')
})

t.test('a receiver that missed messages while its own subscriber reconnected counts them', async (t) => {
  // Redis stays up and A publishes all along: only B's subscribing connection is cut. What B
  // missed shows as a jump in A's sequence numbers when B hears from A again.
  const droppedBefore = droppedSoFar()
  const stream = new Stream('g')
  stream.start()
  await eventually(() => chatTexts(remote, 'g').length >= 5 ? true : undefined, 'traffic to flow')
  const nodeId = (B.app.rooms as unknown as { nodeId: string }).nodeId
  const line = (await redis.clients()).find((l) => l.includes(` name=fastify-ws-rooms-${nodeId}-sub `))
  t.ok(line, 'B\'s subscriber is named after its node')
  await redis.command('CLIENT', 'KILL', 'ID', /^id=(\d+)/.exec(line ?? '')?.[1] ?? '0')
  const cutAt = stream.sent
  await eventually(() => stream.sent >= cutAt + 30 ? true : undefined, 'traffic after the cut')
  await stream.crossNodeBack()
  stream.stop()
  await stream.check(t, droppedBefore)
  t.equal(A.app.rooms.stats().dropped, droppedBefore.a, 'A published everything')
})

t.test('a leave that could not be written during an outage leaves no ghost in members()', async (t) => {
  const outagesBefore = logsB.matching(OUTAGE).length
  const ghost = await open(B, 'ghost2')
  await join(ghost, 'r')
  await sender.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'ghost2')
  t.ok((await A.app.rooms.members('r')).some((m) => m.user.id === 'ghost2'), 'listed')
  // Cut B's publisher and keep it out (no new connections) while ghost2 leaves.
  const nodeId = (B.app.rooms as unknown as { nodeId: string }).nodeId
  const line = (await redis.clients()).find((l) => l.includes(` name=fastify-ws-rooms-${nodeId}-pub `))
  const admin = await redis.open()
  t.teardown(() => admin.disconnect())
  await admin.config('SET', 'maxclients', '1')
  await admin.client('KILL', 'ID', /^id=(\d+)/.exec(line ?? '')?.[1] ?? '0')
  await eventually(() => logsB.matching(OUTAGE).length > outagesBefore ? true : undefined, 'B to notice')
  // The end of this outage is a BACK logged from here on (an earlier one may land late).
  const noticedAt = logsB.records.length
  t.equal((await ghost.request({ type: 'leave', room: 'r' })).type, 'ack', 'the leave works locally')
  await admin.config('SET', 'maxclients', '10000')
  await eventually(() => logsB.matching(BACK, undefined, noticedAt).length > 0 ? true : undefined, 'B to be back')
  const users = (await A.app.rooms.members('r')).map((m) => m.user.id).sort()
  t.same(users, ['fresh', 'local', 'remote', 'sender'], 'ghost2 is gone, B\'s other members are there')
})

t.test('a room\'s presence hash that vanished is written again by the next heartbeats', async (t) => {
  const admin = await redis.open()
  t.teardown(() => admin.disconnect())
  const before = (await A.app.rooms.members('r')).map((m) => m.user.id).sort()
  t.equal(await admin.del(`${prefix}:presence:r`), 1, 'the hash existed, and is deleted behind the nodes\' backs')
  const users = await eventually(async () => {
    const ids = (await A.app.rooms.members('r')).map((m) => m.user.id).sort()
    return ids.length === before.length ? ids : undefined
  }, 'B to write its entries again', 5 * presenceTtl)
  t.same(users, before, 'every member is listed again')
  t.ok(await admin.pttl(`${prefix}:presence:r`) > 0, 'and the hash expires again')
})

t.test('fastify.close() closes every connection the adapter opened', async (t) => {
  t.ok((await redis.clients()).length >= 4, 'two connections per node while running')
  for (const c of clients) c.ws.terminate()
  clients.length = 0
  for (const s of servers.splice(0)) await s.app.close()
  t.same(await redis.clients(), [], 'CLIENT LIST is empty after close')
})
