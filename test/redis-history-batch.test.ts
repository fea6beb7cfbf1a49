// History rooms over Redis in batches: the messages one node publishes to a room within one turn of
// its event loop reach Redis in one script call and the other nodes in one publication, with
// consecutive offsets in publish order, on every node. Watched with MONITOR on a redis-server this
// test starts (nothing else talks to it).
import t from 'tap'
import type { Redis } from 'ioredis'
import { connect, startServer, until, type StartedServer, type TestClient } from './helpers.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import { RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'

type Client = TestClient & { welcome: any }

const redis = await RedisServer.start()
const prefix = uniquePrefix('history-batch')
const clients: Client[] = []
const servers: StartedServer[] = []
let base: Redis | undefined
let monitor: Redis | undefined
t.teardown(async () => {
  monitor?.disconnect()
  base?.disconnect()
  for (const c of clients) c.ws.terminate()
  for (const s of servers) await s.app.close()
  await redis.dispose()
})

for (let i = 0; i < 2; i++) {
  servers.push(await startServer({
    authenticate: (token) => ({ id: token }),
    rateLimit: false,
    history: { size: 500, ttlMs: 60_000, rooms: (room) => room.startsWith('h-') },
    adapter: redisAdapter({ url: redis.url, prefix })
  }))
}
const [A, B] = servers

async function open (server: StartedServer, user: string, room: string): Promise<Client> {
  const client = await connect(`${server.url}?token=${user}`)
  clients.push(client)
  const reply = await client.request({ type: 'join', room })
  if (reply.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(reply)}`)
  return client
}

const withOffset = (client: Client, room: string): any[] => client.received.filter((m) => m?.room === room && typeof m.offset === 'number')

/** What Redis runs from now on for keys and channels of `room` (script calls; commands scripts run). */
async function watch (room: string): Promise<{ scripts: () => number, xadds: () => number, publishes: () => string[] }> {
  base ??= await redis.open()
  monitor ??= await base.monitor()
  const scripts: string[][] = []
  const inLua: string[][] = []
  const mark = `{r:${room}}`
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (!args.some((a) => a.includes(mark))) return
    if (source === 'lua') inLua.push(args)
    else if (/^eval/i.test(args[0])) scripts.push(args)
  })
  // MONITOR sees a command after it ran: a PING through another connection marks "all before it seen".
  await redis.command('PING')
  return {
    scripts: () => scripts.filter((a) => a.some((x) => x.endsWith(':stream'))).length,
    xadds: () => inLua.filter((a) => a[0].toLowerCase() === 'xadd').length,
    publishes: () => inLua.filter((a) => /^s?publish$/i.test(a[0])).map((a) => a[2])
  }
}

t.test('the messages of one tick: one script call, one publication, consecutive offsets in publish order on every node', async (t) => {
  const room = 'h-tick'
  const onA = await open(A, 'a', room)
  const onB = await open(B, 'b', room)
  // A first message loads the script (and the room's epoch): what follows is the steady state.
  await A.app.rooms.broadcast(room, { type: 'note', n: 0 })
  await until(() => withOffset(onB, room).length === 1, 5000, 'the first message on B')
  const seen = await watch(room)

  const n = 20
  const sent: Array<Promise<void>> = []
  for (let i = 1; i <= n; i++) sent.push(A.app.rooms.broadcast(room, { type: 'note', n: i }))
  await Promise.all(sent)
  for (const c of [onA, onB]) await until(() => withOffset(c, room).length === n + 1, 5000, `${n + 1} messages on ${c.welcome.user.id}`)
  await redis.command('PING')
  await until(() => seen.xadds() === n, 2000, 'MONITOR to show the batch')

  t.equal(seen.scripts(), 1, `${n} messages published in one turn go to Redis in one script call`)
  t.equal(seen.xadds(), n, 'each message is its own stream entry')
  t.equal(seen.publishes().length, 1, 'and the other nodes get them in one publication')
  t.match(seen.publishes()[0], /^b/, 'a batch publication')
  for (const c of [onA, onB]) {
    const got = withOffset(c, room)
    t.same(got.map((m) => m.offset), Array.from({ length: n + 1 }, (_, i) => i + 1), `offsets 1..${n + 1}, contiguous and in order on ${c.welcome.user.id}`)
    t.same(got.map((m) => m.n), Array.from({ length: n + 1 }, (_, i) => i), `in the order they were published, on ${c.welcome.user.id}`)
  }
  const page = await B.app.rooms.history(room)
  t.same(page.messages.map((m) => m.offset), Array.from({ length: n + 1 }, (_, i) => i + 1), 'the stream keeps them all, in order')
})

t.test('clients publishing at once: each ack has its own offset, together they are contiguous, members get them in that order', async (t) => {
  const room = 'h-clients'
  const publishers: Client[] = []
  for (let i = 0; i < 10; i++) publishers.push(await open(A, `p${i}`, room))
  const onB = await open(B, 'b2', room)
  const seen = await watch(room)
  const perClient = 5
  const acks = await Promise.all(publishers.flatMap((p, i) => Array.from({ length: perClient }, (_, k) => p.request({ type: 'message', room, text: `${i}:${k}` }))))
  const offsets = acks.map((a) => a.data.offset).sort((x, y) => x - y)
  const total = publishers.length * perClient
  t.same(offsets, Array.from({ length: total }, (_, i) => i + 1), 'the acks carry offsets 1..50, each once')
  await until(() => withOffset(onB, room).length === total, 5000, `${total} messages on B`)
  t.same(withOffset(onB, room).map((m) => m.offset), offsets, 'B gets them in offset order')
  // Each ack's offset is where its text went.
  const byOffset = new Map(withOffset(onB, room).map((m) => [m.offset, m.text]))
  const expected = new Map(acks.map((a, j) => [a.data.offset, `${Math.floor(j / perClient)}:${j % perClient}`]))
  t.same(byOffset, expected, 'each message sits at the offset its ack gave')
  // A client's next message waits for its previous ack, so a turn holds at most one per client.
  await redis.command('PING')
  t.ok(seen.scripts() < total, `fewer script calls (${seen.scripts()}) than messages (${total})`)
})

t.test('more messages in one turn than one call takes: several calls, one order', async (t) => {
  const room = 'h-many'
  const onB = await open(B, 'b3', room)
  await A.app.rooms.broadcast(room, { type: 'note', n: 0 })
  await until(() => withOffset(onB, room).length === 1, 5000, 'the first message on B')
  const seen = await watch(room)
  const n = 600 // a call takes at most 256
  await Promise.all(Array.from({ length: n }, (_, i) => A.app.rooms.broadcast(room, { type: 'note', n: i + 1 })))
  await until(() => withOffset(onB, room).length === n + 1, 10_000, `${n + 1} messages on B`)
  await redis.command('PING')
  await until(() => seen.xadds() === n, 2000, 'MONITOR to show every entry')
  t.equal(seen.scripts(), 3, '600 messages in three calls')
  t.equal(seen.publishes().length, 3, 'and three publications')
  const got = withOffset(onB, room)
  t.same(got.map((m) => m.offset), Array.from({ length: n + 1 }, (_, i) => i + 1), 'offsets contiguous and in order')
  t.same(got.map((m) => m.n), Array.from({ length: n + 1 }, (_, i) => i), 'in the order they were published')
})
