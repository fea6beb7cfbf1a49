// A history publish whose outcome the publisher did not hear (CONTRACT §9 with an adapter): node A
// talks to Redis through a proxy that loses exactly one reply, or one command, and then cuts A's
// connection; node B talks to Redis directly. The sender's answer must match what happened:
// kept and delivered → acked with its offset; never reached Redis → `unavailable`, delivered to
// nobody; Redis not back in time, or the message trimmed away meanwhile → `unavailable`, logged as
// of unknown outcome.
import t from 'tap'
import { eventually, type StartedServer } from './helpers.js'
import { KeyNames } from '../lib/adapters/redis-keys.js'
import { LogCapture, RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'
import { type Client, RedisNodes } from './fixtures/redis-nodes.js'
import { TcpProxy } from './fixtures/tcp-proxy.js'

const PRESENCE_TTL = 2000
const IN_DOUBT_WAIT = PRESENCE_TTL + 2000 // how long an in-doubt publish waits for Redis to be back

const redis = await RedisServer.start()
const proxy = await TcpProxy.start(redis.port)
const prefix = uniquePrefix('history-in-doubt')
const group = new RedisNodes(t, redis.url, prefix, async () => {
  await proxy.close()
  await redis.dispose()
})

const logA = new LogCapture()
async function node (url: string, logs?: LogCapture): Promise<StartedServer> {
  return await group.node({
    history: { size: 50, ttlMs: 60_000, rooms: (room) => room.startsWith('h-') }
  }, { redis: { url, presenceTtl: PRESENCE_TTL }, logs })
}
const A = await node(proxy.url, logA)
const B = await node(redis.url)

async function open (server: StartedServer, user: string, room: string): Promise<Client> {
  const client = await group.open(server, user)
  const reply = await client.request({ type: 'join', room })
  if (reply.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(reply)}`)
  return client
}

const texts = (client: Client, room: string): string[] =>
  client.received.filter((m) => m?.type === 'chat' && m.room === room).map((m) => m.text)

/** Whether Redis itself (not through the proxy) has a message with `text` in the room's stream. */
async function kept (room: string, text: string): Promise<boolean> {
  const entries = await redis.command('XRANGE', new KeyNames(prefix).room(room).stream, '-', '+') as Array<[string, string[]]>
  return entries.some(([, fields]) => fields.some((f) => f.includes(`"text":"${text}"`)))
}

/** A sender and a member on A, a member on B, and a first message 'before' (its ack returned). */
async function threeInRoom (room: string): Promise<{ sender: Client, near: Client, far: Client, before: any }> {
  const sender = await open(A, `${room}-sender`, room)
  const near = await open(A, `${room}-near`, room)
  const far = await open(B, `${room}-far`, room)
  const before = await sender.request({ type: 'message', room, text: 'before' }, 'before')
  if (before.type !== 'ack') throw new Error(`before: ${JSON.stringify(before)}`)
  return { sender, near, far, before }
}

/**
 * `sender` sends `text` (frame id `id`); Redis runs it, the reply is lost and A's connection is cut
 * (with new connections refused when `refuse`). Resolves once the cut is done.
 */
async function sendWithReplyLost (sender: Client, room: string, text: string, id: string, refuse = false): Promise<void> {
  const caught = proxy.loseReplyTo(text)
  sender.send({ type: 'message', room, text, id })
  await caught
  await eventually(async () => await kept(room, text) ? true : undefined, 'Redis to run the script')
  proxy.refuse(refuse)
  proxy.cut()
}

async function backUp (from: number): Promise<void> {
  await eventually(() => logA.matching('redis adapter: Redis is back', undefined, from).length > 0 ? true : undefined, 'A to be back', 10_000)
}

t.test('a publish whose reply was lost, but which Redis kept, is acked with the offset it got', async (t) => {
  const room = 'h-kept'
  const { sender, near, far, before } = await threeInRoom(room)
  const logged = logA.records.length
  await sendWithReplyLost(sender, room, 'doubt-kept', 'k')
  const answer = await sender.next((m) => m.id === 'k', 10_000)
  t.same(answer, { type: 'ack', id: 'k', data: { offset: before.data.offset + 1 } }, 'the sender is acked with the offset the message has in the history')
  await backUp(logged)
  t.equal(logA.matching('had been kept; acked with its offset', undefined, logged).length, 1, 'A logs that it learned the outcome')
  const after = await sender.request({ type: 'message', room, text: 'after' }, 'after')
  t.same(after, { type: 'ack', id: 'after', data: { offset: before.data.offset + 2 } }, 'the next message gets the next offset')
  for (const [name, member] of [['near (on A)', near], ['far (on B)', far]] as const) {
    await member.next((m) => m.type === 'chat' && m.text === 'after')
    t.same(texts(member, room), ['before', 'doubt-kept', 'after'], `${name} got it once, in order`)
  }
  const history = await B.app.rooms.history(room)
  t.same(history.messages.map((m) => m.text), ['before', 'doubt-kept', 'after'], 'the history holds it once')
})

t.test('a publish that never reached Redis is refused with unavailable and reaches nobody', async (t) => {
  const room = 'h-lost'
  const { sender, near, far, before } = await threeInRoom(room)
  const logged = logA.records.length
  const caught = proxy.swallow('doubt-lost')
  sender.send({ type: 'message', room, text: 'doubt-lost', id: 'l' })
  await caught
  const answer = await sender.next((m) => m.id === 'l', 10_000)
  t.match(answer, { type: 'error', id: 'l', code: 'unavailable' }, 'the sender is told it was not published')
  t.notOk(await kept(room, 'doubt-lost'), 'Redis never had it')
  await backUp(logged)
  const after = await sender.request({ type: 'message', room, text: 'after' }, 'after')
  t.same(after, { type: 'ack', id: 'after', data: { offset: before.data.offset + 1 } }, 'no offset was spent on it')
  for (const [name, member] of [['near (on A)', near], ['far (on B)', far]] as const) {
    await member.next((m) => m.type === 'chat' && m.text === 'after')
    t.same(texts(member, room), ['before', 'after'], `${name} never got it`)
  }
})

t.test('Redis not back within the wait: unavailable, logged as an unknown outcome', async (t) => {
  const room = 'h-unknown'
  const { sender, far } = await threeInRoom(room)
  const logged = logA.records.length
  await sendWithReplyLost(sender, room, 'doubt-unknown', 'u', true)
  const started = Date.now()
  const answer = await sender.next((m) => m.id === 'u', IN_DOUBT_WAIT + 5000)
  const waited = Date.now() - started
  t.match(answer, { type: 'error', id: 'u', code: 'unavailable' }, 'the sender is refused')
  t.ok(waited >= IN_DOUBT_WAIT - 100, `after waiting for Redis (${waited} ms)`)
  const warning = logA.matching('could not be ordered', 40, logged)
  t.equal(warning.length, 1, 'one warning')
  t.match(warning[0]?.err?.message, /unknown/, 'which says the outcome is unknown')
  // It was kept and delivered on B: the warning is the only trace of the doubt.
  await far.next((m) => m.type === 'chat' && m.text === 'doubt-unknown')
  proxy.refuse(false)
  await backUp(logged)
  const after = await sender.request({ type: 'message', room, text: 'after' }, 'after')
  t.equal(after.type, 'ack', 'the room takes messages again once Redis is back')
})

t.test('kept, then trimmed away before Redis was asked: unavailable, logged as an unknown outcome', async (t) => {
  const room = 'h-trimmed'
  const { sender, far } = await threeInRoom(room)
  const logged = logA.records.length
  await sendWithReplyLost(sender, room, 'doubt-trimmed', 'tr', true)
  // While A cannot ask, B publishes a full stream (size 50) after it.
  for (let i = 0; i < 50; i++) await far.request({ type: 'message', room, text: `later-${i}` }, `later-${i}`)
  t.notOk(await kept(room, 'doubt-trimmed'), 'it was trimmed away')
  proxy.refuse(false)
  const answer = await sender.next((m) => m.id === 'tr', IN_DOUBT_WAIT + 5000)
  t.match(answer, { type: 'error', id: 'tr', code: 'unavailable' }, 'the sender is refused')
  const warning = logA.matching('could not be ordered', 40, logged)
  t.equal(warning.length, 1, 'one warning')
  t.match(warning[0]?.err?.message, /trimmed since: whether the message was kept \(and delivered\) is unknown/, 'which says it may have been trimmed')
})

t.test('a batch whose reply was lost, but which Redis kept: every sender is acked with the offset its message got', async (t) => {
  const room = 'h-kept-batch'
  const { sender, near, far, before } = await threeInRoom(room)
  const others = [await open(A, `${room}-s2`, room), await open(A, `${room}-s3`, room)]
  const logged = logA.records.length
  // Three senders at once: what A reads in one turn goes to Redis in one call, whose reply is lost.
  const caught = proxy.loseReplyTo('doubt-batch')
  sender.send({ type: 'message', room, text: 'doubt-batch-1', id: 'b1' })
  others[0].send({ type: 'message', room, text: 'doubt-batch-2', id: 'b2' })
  others[1].send({ type: 'message', room, text: 'doubt-batch-3', id: 'b3' })
  await caught
  await eventually(async () => (await kept(room, 'doubt-batch-1') && await kept(room, 'doubt-batch-2') && await kept(room, 'doubt-batch-3')) ? true : undefined, 'Redis to run the script')
  proxy.cut()
  const answers = await Promise.all([sender, ...others].map((c, i) => c.next((m) => m.id === `b${i + 1}`, 10_000)))
  t.same(answers.map((a) => a.type), ['ack', 'ack', 'ack'], 'every sender is acked')
  const history = await B.app.rooms.history(room)
  const offsetOf = new Map(history.messages.map((m) => [m.text, m.offset]))
  t.same(answers.map((a) => a.data.offset), [1, 2, 3].map((i) => offsetOf.get(`doubt-batch-${i}`)), 'each with the offset its message has in the history')
  t.same([...offsetOf.values()], [1, 2, 3, 4].map((i) => before.data.offset + i - 1), 'the history holds each once, offsets contiguous')
  // One lookup answers a whole batch (its last message's); how the frames fell into turns is up to the kernel.
  const lookups = logA.matching('had been kept; acked with its offset', undefined, logged)
  t.ok(lookups.length >= 1, 'A learned the outcome by looking it up')
  t.comment(`${lookups.length} lookup(s) for 3 messages`)
  await backUp(logged)
  for (const [name, member] of [['near (on A)', near], ['far (on B)', far]] as const) {
    await eventually(() => texts(member, room).length >= 4 ? true : undefined, `${name} to get all four`)
    t.same(texts(member, room), history.messages.map((m) => m.text), `${name} got each once, in the history's order`)
  }
})
