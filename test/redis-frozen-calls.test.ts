// Calls made just as Redis freezes (SIGSTOP: a frozen host, or a partition where TCP takes hours to
// give up) must settle while it is still frozen, each by its own rule: a history publish after the
// in-doubt wait (unavailable), a user command after one answer time (unavailable), reads with what
// they could not get; and a connection whose frame waited on Redis goes on being served. Nothing
// here waits for SIGCONT, which comes only in the teardown.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { redisAdapter } from '../lib/adapters/redis.js'
import { startServer, type StartedServer } from './helpers.js'
import { RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'
import { RedisNodes } from './fixtures/redis-nodes.js'

// Heartbeat every 250 ms; a command's answer is awaited 500 ms; an in-doubt publish waits
// presenceTtl + 2 s for Redis to be back: every call settles within about 4 s.
const PRESENCE_TTL = 1000
/** Far above every bound, far below "until Redis resumes" (never, here). */
const SETTLES_WITHIN = 15_000

const redis = await RedisServer.start()
const prefix = uniquePrefix('frozen-calls')
const group = new RedisNodes(t, redis.url, prefix, async () => { await redis.dispose() })
// Teardowns run last-registered first: Redis is resumed before the nodes close (a frozen one would hold them).
t.teardown(() => { redis.signal('SIGCONT') })
const { servers } = group
const open = group.open.bind(group)

function options (): Parameters<typeof startServer>[0] {
  return {
    authenticate: (token) => ({ id: token }),
    rateLimit: false,
    history: { size: 50, ttlMs: 60_000, rooms: (room) => room.startsWith('h-') },
    adapter: redisAdapter({ url: redis.url, prefix, presenceTtl: PRESENCE_TTL })
  }
}

async function node (): Promise<StartedServer> {
  const server = await startServer(options())
  servers.push(server)
  return server
}

/** How `promise` settled, or 'pending' if it had not after SETTLES_WITHIN. */
async function outcome (promise: Promise<unknown>): Promise<{ resolved: unknown } | { rejected: any } | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'pending'>((resolve) => { timer = setTimeout(resolve, SETTLES_WITHIN, 'pending') })
  try {
    return await Promise.race([promise.then((resolved) => ({ resolved }), (rejected) => ({ rejected })), late])
  } finally {
    clearTimeout(timer)
  }
}

/** The state letter of a process (Linux /proc: T for stopped). */
function processState (pid: number | undefined): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
}

const A = await node()
const B = await node()

t.test('calls made as Redis freezes settle while it is frozen, and the connection goes on', async (t) => {
  const sender = await open(A, 'sender')
  const member = await open(B, 'member')
  for (const client of [sender, member]) {
    const reply = await client.request({ type: 'join', room: 'h-room' })
    t.equal(reply.type, 'ack', `${client.welcome.user.id} joined the history room`)
  }
  t.equal((await sender.request({ type: 'message', room: 'h-room', text: 'before' }, 'before')).type, 'ack', 'the history room takes messages')

  redis.signal('SIGSTOP')
  // All at once, before the heartbeat can notice the freeze: each command is written to a socket
  // that nobody reads.
  sender.send({ type: 'message', room: 'h-room', text: 'frozen', id: 'stuck' })
  sender.send({ type: 'join', room: 'plain', id: 'next-join' })
  sender.send({ type: 'message', room: 'plain', text: 'local', id: 'next-message' })
  const calls = {
    broadcast: A.app.rooms.broadcast('h-room', { type: 'news', text: 'frozen' }),
    disconnectUser: A.app.rooms.disconnectUser('member'),
    joinUser: A.app.rooms.joinUser('member', 'plain'),
    history: A.app.rooms.history('h-room'),
    members: A.app.rooms.members('h-room')
  }
  const frameIds = ['stuck', 'next-join', 'next-message']
  const [settled, answers] = await Promise.all([
    Promise.all(Object.entries(calls).map(async ([name, call]) => [name, await outcome(call)] as const)).then(Object.fromEntries),
    Promise.all(frameIds.map(async (id) => await outcome(sender.next((m) => m.id === id, 2 * SETTLES_WITHIN))))
  ])
  t.equal(processState(redis.proc?.pid), 'T', 'Redis is still frozen')

  for (const name of ['broadcast', 'disconnectUser', 'joinUser', 'history']) {
    t.match(settled[name], { rejected: { code: 'FST_WS_ROOMS_UNAVAILABLE' } }, `${name}() rejects with the unavailable error`)
  }
  t.same(settled.members, { resolved: [{ connectionId: sender.welcome.connectionId, user: { id: 'sender' } }] }, 'members() answers with the local members')
  t.match(answers[0], { resolved: { type: 'error', id: 'stuck', code: 'unavailable' } }, 'the message to the history room is refused with unavailable')
  t.same(answers[1], { resolved: { type: 'ack', id: 'next-join' } }, 'the join that waited behind it is acked')
  t.same(answers[2], { resolved: { type: 'ack', id: 'next-message' } }, 'and so is the message to a plain room after it')
  const order = sender.received.map((m) => m?.id).filter((id) => frameIds.includes(id))
  t.same(order, frameIds, 'in the order of the frames')
  t.equal(member.ws.readyState, member.ws.OPEN, 'the disconnect did not reach the other node')

  // A node started while Redis is frozen fails register instead of waiting for it.
  const starting = outcome(startServer(options()).then((server) => { servers.push(server) }))
  t.match(await starting, { rejected: { message: /redisAdapter\.url/ } }, 'register fails, naming the option')
  t.equal(processState(redis.proc?.pid), 'T', 'Redis was frozen all along')
})
