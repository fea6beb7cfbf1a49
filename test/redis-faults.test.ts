// Redis faults, against a redis-server this test starts on its own port: frozen (SIGSTOP, SIGCONT)
// and killed then restarted on the same port, both mid-traffic. The two nodes are never restarted:
// local delivery goes on, one error is logged per outage, cross-node delivery comes back by itself,
// and every message sent meanwhile is either delivered (in order, once) or counted in `dropped`.
//
// The accounting is checked exactly, per phase and in both directions (A → B, B → A):
//   delivered + dropped(A) + dropped(B) === sent + extra
// `extra` is what the phase publishes besides the two streams (join and leave events made while a
// node cannot publish, each counted once), plus each publication that failed in flight: its seq
// was already used, so the sender counts it (publish failed) and the receiver counts it again (seq
// gap), as docs/redis.md says ("`dropped` may count a message twice (at the sender and at the receiver)"). A
// duplicate delivery or a message lost without being counted breaks the equation.
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { eventually, join, startServer, until, type StartedServer } from './helpers.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import { LogCapture, RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'
import { type Client, RedisNodes } from './fixtures/redis-nodes.js'

const OUTAGE = 'redis adapter: Redis unavailable'
const BACK = 'redis adapter: Redis is back'
const presenceTtl = 2000 // heartbeat every 500 ms: a frozen Redis is noticed within about a second

const redis = await RedisServer.start()
const prefix = uniquePrefix('faults')
const group = new RedisNodes(t, redis.url, prefix, async () => { await redis.stop() })
const { clients, servers } = group
const open = group.open.bind(group)

async function node (logs: LogCapture): Promise<StartedServer> {
  return await group.node({}, { redis: { presenceTtl }, logs })
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

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
const increasing = (list: number[]): boolean => list.every((n, i) => i === 0 || n > list[i - 1])

/**
 * One phase's traffic: the sender's messages (on A) numbered `tag:0`, `tag:1`, … (steady, every
 * 10 ms), and probes from `remote` (on B) numbered `tag-back:0`, … to find out when B → A works.
 */
class Stream {
  readonly tag: string
  readonly back: string
  sent = 0
  probes = 0
  private timer: NodeJS.Timeout | undefined
  constructor (tag: string) {
    this.tag = tag
    this.back = `${tag}-back`
  }

  send (): void { sender.send({ type: 'message', room: 'r', text: `${this.tag}:${this.sent++}` }) }
  probe (): void { remote.send({ type: 'message', room: 'r', text: `${this.back}:${this.probes++}` }) }
  start (): void { this.timer = setInterval(() => this.send(), 10) }
  stop (): void { clearInterval(this.timer) }

  /** Keep sending until a message sent from now on crosses A → B, then the same B → A. */
  async crossNodeBack (): Promise<void> {
    const from = this.sent
    await eventually(() => {
      this.send()
      return chatTexts(remote, this.tag).some((n) => n >= from) ? true : undefined
    }, 'cross-node delivery A → B to resume', 20_000, 100)
    const probesFrom = this.probes
    await eventually(() => {
      this.probe()
      return chatTexts(sender, this.back).some((n) => n >= probesFrom) ? true : undefined
    }, 'cross-node delivery B → A to resume', 20_000, 100)
  }

  /**
   * After stop(): the local member got everything; across nodes every message was delivered once,
   * in order, or counted in `dropped`, exactly: delivered + dropped === sent + `extra` (see the top).
   */
  async check (t: Test, droppedBefore: { a: number, b: number }, extra: number, why: string): Promise<void> {
    await this.crossNodeBack()
    // Delivery works both ways again, so the last message of each stream arrives: from then on
    // nothing is in flight, and every gap before it has been seen (and counted) by its receiver.
    await until(() => chatTexts(local, this.tag).includes(this.sent - 1), 10_000, 'the last message to reach the local member')
    await until(() => chatTexts(remote, this.tag).includes(this.sent - 1), 10_000, 'the last message to reach B')
    await until(() => chatTexts(sender, this.back).includes(this.probes - 1), 10_000, 'the last probe to reach A')
    const { sent, probes } = this
    t.same(chatTexts(local, this.tag), range(sent), `local delivery: all ${sent} messages, once, in order`)
    const toB = chatTexts(remote, this.tag)
    const toA = chatTexts(sender, this.back)
    t.ok(increasing(toB) && toB.every((n) => n < sent), `A → B: in order, no duplicate (${toB.length} of ${sent})`)
    t.ok(increasing(toA) && toA.every((n) => n < probes), `B → A: in order, no duplicate (${toA.length} of ${probes})`)
    const droppedA = A.app.rooms.stats().dropped - droppedBefore.a
    const droppedB = B.app.rooms.stats().dropped - droppedBefore.b
    t.equal(toB.length + toA.length + droppedA + droppedB, sent + probes + extra,
      `delivered ${toB.length} A → B + ${toA.length} B → A, dropped A ${droppedA} + B ${droppedB} = sent ${sent} + ${probes} + ${extra} (${why})`)
  }
}

/** The state letter of a process (Linux /proc: R, S, T for stopped, …). */
function processState (pid: number | undefined): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
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
  t.strictSame(await late.request({ type: 'join', room: 'r2' }, 'late-join'), { type: 'ack', id: 'late-join' }, 'a join during the freeze is acknowledged')
  const members = await A.app.rooms.members('r2')
  t.same(members.map((m) => m.user.id), ['late'], 'members() answers with what this node knows')

  redis.signal('SIGCONT')
  await stream.crossNodeBack()
  stream.stop()
  // Publications written before A noticed the freeze wait in Redis and go out when it thaws: none
  // failed. The one extra is late's join event, which A (stalled) could not publish.
  await stream.check(t, droppedBefore, 1, 'late\'s join event, dropped by A during the freeze')
  t.ok(droppedNow() - droppedBefore.a - droppedBefore.b > 1, 'what could not be published was counted')
  await eventually(() => logsA.matching(BACK).length > 0 ? true : undefined, 'A to log that Redis is back')
  t.equal(logsA.matching(OUTAGE, 50).length, 1, 'A logged one error for the outage')
  t.equal(logsA.matching(BACK, 30).length, 1, 'and one line when it was over')
})

const IN_FLIGHT = 3

t.test('Redis killed and restarted on the same port', async (t) => {
  const outagesBefore = { a: logsA.matching(OUTAGE).length, b: logsB.matching(OUTAGE).length }
  const droppedBefore = droppedSoFar()
  const stream = new Stream('k')
  stream.start()
  await eventually(() => chatTexts(remote, 'k').length >= 5 ? true : undefined, 'traffic to flow')

  // Killed with exactly IN_FLIGHT publications in flight (each counted twice, see the top), so the
  // accounting is exact: pause the stream until nothing is in flight (everything reached B, and a
  // members() query on A's publishing connection came back after every PUBLISH reply), freeze
  // Redis, publish IN_FLIGHT messages (written to the socket, never read), then kill it. A notices
  // a freeze only after two heartbeat intervals (500 ms each here): by then Redis is dead.
  stream.stop()
  await until(() => chatTexts(remote, 'k').includes(stream.sent - 1), 10_000, 'B to get everything sent so far')
  await A.app.rooms.members('r')
  redis.signal('SIGSTOP')
  await until(() => processState(redis.proc?.pid) === 'T', 5000, 'redis-server to stop')
  const inFlightFrom = stream.sent
  for (let i = 0; i < IN_FLIGHT; i++) stream.send()
  // Delivered locally means published: the broker hands a message to the adapter as it delivers it.
  await until(() => chatTexts(local, 'k').includes(stream.sent - 1), 5000, 'the in-flight messages to be published')
  t.equal(logsA.matching(OUTAGE).length, outagesBefore.a, `A had not noticed the freeze when it published ${IN_FLIGHT} messages: they are in flight`)
  await redis.stop('SIGKILL')
  stream.start()
  await eventually(() => logsA.matching(OUTAGE).length > outagesBefore.a && logsB.matching(OUTAGE).length > outagesBefore.b ? true : undefined,
    'both nodes to notice')
  // The end of this outage is a BACK logged from here on (an earlier one may land late).
  const noticedAt = { a: logsA.records.length, b: logsB.records.length }
  const killedAt = stream.sent
  await eventually(() => chatTexts(local, 'k').length >= killedAt + 20 ? true : undefined, 'local delivery while Redis is gone')
  const localSoFar = chatTexts(local, 'k')
  t.same(localSoFar, range(localSoFar.length), `local delivery goes on without Redis: ${localSoFar.length} messages so far, once, in order`)

  // A leave while Redis is gone must not leave a ghost in members() afterwards.
  const ghost = await open(B, 'ghost')
  await join(ghost, 'r')
  t.equal((await ghost.request({ type: 'leave', room: 'r' })).type, 'ack')

  await redis.start()
  await stream.crossNodeBack()
  stream.stop()
  t.notOk(chatTexts(remote, 'k').some((n) => n >= inFlightFrom && n < inFlightFrom + IN_FLIGHT), 'the in-flight messages never reached B')
  // Beside the streams: ghost's join and leave events (B could not publish them: counted once
  // each), and the IN_FLIGHT messages, sent but counted twice (A: publish failed; B: seq gap).
  await stream.check(t, droppedBefore, 2 + IN_FLIGHT,
    `ghost's join and leave, dropped by B while Redis was gone; ${IN_FLIGHT} publications failed in flight, counted by A and again by B`)
  t.ok(A.app.rooms.stats().dropped - droppedBefore.a >= IN_FLIGHT, 'A counted what it could not publish')

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
  t.ok(await redis.killClient(`fastify-ws-rooms-${nodeId}-sub`), 'B\'s subscriber, named after its node, was cut')
  const cutAt = stream.sent
  await eventually(() => stream.sent >= cutAt + 30 ? true : undefined, 'traffic after the cut')
  await stream.crossNodeBack()
  stream.stop()
  await stream.check(t, droppedBefore, 0, 'nothing but the streams was published')
  t.equal(A.app.rooms.stats().dropped, droppedBefore.a, 'A published everything')
  t.ok(B.app.rooms.stats().dropped > droppedBefore.b, 'B counted the gap in A\'s seq')
})

t.test('a leave that could not be written during an outage leaves no ghost in members()', async (t) => {
  const outagesBefore = logsB.matching(OUTAGE).length
  const ghost = await open(B, 'ghost2')
  await join(ghost, 'r')
  await sender.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === 'ghost2')
  t.ok((await A.app.rooms.members('r')).some((m) => m.user.id === 'ghost2'), 'listed')
  // Cut B's publisher and keep it out (no new connections) while ghost2 leaves.
  const nodeId = (B.app.rooms as unknown as { nodeId: string }).nodeId
  const admin = await redis.open()
  t.teardown(() => admin.disconnect())
  await admin.config('SET', 'maxclients', '1')
  t.ok(await redis.killClient(`fastify-ws-rooms-${nodeId}-pub`, admin), 'B\'s publisher was cut')
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
  const members = `${prefix}:{r:r}:members`
  const leases = `${prefix}:{r:r}:nodes`
  t.equal(await admin.del(members, leases), 2, 'the members hash and the nodes\' leases existed, and are deleted behind the nodes\' backs')
  const users = await eventually(async () => {
    const ids = (await A.app.rooms.members('r')).map((m) => m.user.id).sort()
    return ids.length === before.length ? ids : undefined
  }, 'B to write its entries again', 5 * presenceTtl)
  t.same(users, before, 'every member is listed again')
  for (const key of [members, leases]) {
    const ttl = await admin.pttl(key)
    t.ok(ttl > 0 && ttl <= presenceTtl, `and ${key.slice(prefix.length + 1)} expires again, within presenceTtl (${ttl} ms left)`)
  }
})

t.test('fastify.close() closes every connection the adapter opened', async (t) => {
  const nodeIds = [A, B].map((s) => (s.app.rooms as unknown as { nodeId: string }).nodeId)
  const names = (await redis.clients()).map((line) => / name=(\S*)/.exec(line)?.[1]).filter((name) => name?.startsWith('fastify-ws-rooms-')).sort()
  t.same(names, nodeIds.flatMap((id) => [`fastify-ws-rooms-${id}-pub`, `fastify-ws-rooms-${id}-sub`]).sort(), 'a publisher and a subscriber per node while running')
  for (const c of clients) c.ws.terminate()
  clients.length = 0
  for (const s of servers.splice(0)) await s.app.close()
  t.same(await redis.clients(), [], 'CLIENT LIST is empty after close')
})

t.test('fastify.close() with Redis gone does not wait for connections that have no socket', async (t) => {
  // ioredis ends a connection that waits to reconnect without an 'end' event: waiting for one
  // held close() for two heartbeat intervals (here 2 × 15 s).
  const server = await startServer({ adapter: redisAdapter({ url: redis.url, prefix, presenceTtl: 60_000 }) })
  await redis.stop('SIGKILL')
  const closing = server.app.close().then(() => 'closed' as const)
  const late = new Promise<'late'>((resolve) => setTimeout(resolve, 5000, 'late').unref())
  t.equal(await Promise.race([closing, late]), 'closed', 'close() resolved before 5 s')
  await closing
})
