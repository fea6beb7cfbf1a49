// History chaos: several nodes over one redis-server (persistent: append-only, fsync always), many
// clients in a few history rooms publishing all along, connections cut at random and resumed on a
// random node with `since`, REST broadcasts from random nodes, and Redis killed and restarted
// mid-traffic, and each node's publishing connection cut from Redis's side (CLIENT KILL) with
// scripts in flight, so that some publishes ran but their replies were lost. Then every message seen by every client is counted: each client must have seen
// every offset of every room it is in exactly once, in order, with the same payload as everybody
// else, except what the server reported lost (`recovered: false`), and nothing the senders were
// told was refused (`unavailable`, a rejected broadcast) may show up anywhere.
//
// Run by test/chaos-history-short.test.ts (short, in `npm test`) and `npm run chaos` (long).
import { WebSocket } from 'ws'
import { Redis } from 'ioredis'
import Fastify, { type FastifyInstance } from 'fastify'
import wsRooms from '../../lib/index.js'
import { redisAdapter } from '../../lib/adapters/redis.js'
import { RedisServer, uniquePrefix } from '../fixtures/redis-helpers.js'

export interface ChaosOptions {
  durationMs: number
  clients: number
  nodes: number
  rooms: number
  /** How many times Redis is killed (SIGKILL) and restarted during the run. */
  redisRestarts: number
  /** How many times a random node's publishing connection is killed from Redis's side (CLIENT KILL). */
  publisherCuts: number
  /** Deterministic choices (which client is cut, where it goes). */
  seed: number
  log: (line: string) => void
}

export interface ChaosResult {
  /** What the run could not reconcile; empty when every guarantee held. */
  problems: string[]
  published: number
  acked: number
  refused: number
  /** Sent, then the connection was cut before its answer: published or not, the history says. */
  unanswered: number
  broadcasts: { ok: number, rejected: number }
  cuts: number
  rejoins: { recovered: number, notRecovered: number, retried: number }
  recoveredMessages: number
  reportedLost: number
  duplicatesDropped: number
  deliveriesChecked: number
  redisRestarts: number
  publisherCuts: number
  /** What the nodes logged at warn and above (and in-doubt publishes resolved), by message. */
  serverLogs: Record<string, number>
  /** Close codes the clients saw (their own cuts are 1006). */
  closes: Record<string, number>
}

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** What one client knows of one room: its epoch and the offsets it has seen. */
class RoomView {
  epoch: string | undefined
  /** Every offset up to here is seen. */
  watermark = 0
  /** Seen offsets above the watermark (own messages acked early, or frames after a reported loss). */
  ahead = new Set<number>()
  /** The highest offset delivered live (not in a recovery), for the order check. */
  lastLive = 0
  /** Offsets the server said were lost to this client (recovered: false). */
  lost = 0
  /** Offset → the frame's payload, as this client saw it. */
  readonly payloads = new Map<number, string>()

  seen (offset: number): boolean {
    return offset <= this.watermark || this.ahead.has(offset)
  }

  mark (offset: number): void {
    this.ahead.add(offset)
    while (this.ahead.delete(this.watermark + 1)) this.watermark++
  }
}

class ChaosClient {
  readonly user: string
  readonly rooms: Map<string, RoomView>
  ws: WebSocket | undefined
  node = 0
  /** Rooms joined on the current connection (acked). */
  readonly joined = new Set<string>()
  /** Frames with an offset received before the join's ack: the recovery of that room. */
  private recovering = new Map<string, number>()
  private pending = new Map<string, { room: string, text: string }>()
  private nextId = 0
  stopped = false
  constructor (user: string, rooms: string[]) {
    this.user = user
    this.rooms = new Map(rooms.map((r) => [r, new RoomView()]))
  }

  connect (run: ChaosRun, node: number): void {
    this.node = node
    this.joined.clear()
    this.recovering.clear()
    this.since.clear()
    this.joinsSent = 0
    this.trace = []
    // What was in flight on the old connection will never be answered.
    run.result.unanswered += this.pending.size
    this.pending.clear()
    const ws = new WebSocket(`${run.urls[node]}?token=${this.user}`)
    this.ws = ws
    ws.on('error', () => {})
    ws.on('message', (data) => this.receive(run, ws, JSON.parse(data.toString())))
    ws.on('close', (code) => {
      if (this.ws !== ws || this.stopped) return
      run.result.closes[code] = (run.result.closes[code] ?? 0) + 1
      this.ws = undefined
      // Cut by the test, or closed by a node (1012: history lost; 1001: node closing): back soon.
      if (code !== 1000 && code !== 1005 && code !== 1006 && code !== 1012 && code !== 1001) run.problem(`${this.user}: closed with ${code}`)
      setTimeout(() => { if (!this.stopped) this.connect(run, Math.floor(run.rand() * run.urls.length)) }, Math.floor(run.rand() * 300))
    })
  }

  private receive (run: ChaosRun, ws: WebSocket, frame: any): void {
    if (frame.type === 'system' && frame.event === 'welcome') {
      for (const room of this.rooms.keys()) this.join(ws, room)
      return
    }
    if (frame.type === 'chat' || frame.type === 'news') {
      const view = this.rooms.get(frame.room)
      if (view === undefined || typeof frame.offset !== 'number') {
        run.problem(`${this.user}: a frame without a place: ${JSON.stringify(frame).slice(0, 200)}`)
        return
      }
      const inRecovery = !this.joined.has(frame.room)
      const offset: number = frame.offset
      this.trace.push(`${inRecovery ? 'r' : 'l'}${frame.room}@${offset}/${view.watermark}`)
      if (view.seen(offset)) {
        // Recovery replays from the watermark: offsets seen ahead of it come again and are dropped (§9: the client does).
        // (`since` is the watermark the join was sent with: what was seen above it comes again.)
        if (inRecovery && offset > (this.since.get(frame.room) ?? Infinity)) run.result.duplicatesDropped++
        else run.problem(`${this.user}: offset ${offset} of ${frame.room} twice (${inRecovery ? 'recovery' : 'live'}; node ${this.node}, joined with since ${this.since.get(frame.room) ?? 'none'}, watermark ${view.watermark}, joins on this connection ${this.joinsSent}; trace: ${this.trace.slice(-60).join(' ')})`)
        return
      }
      if (inRecovery) {
        this.recovering.set(frame.room, (this.recovering.get(frame.room) ?? 0) + 1)
      } else {
        if (offset <= view.lastLive) run.problem(`${this.user}: ${frame.room} offset ${offset} after ${view.lastLive}`)
        view.lastLive = offset
      }
      view.mark(offset)
      view.payloads.set(offset, frame.type === 'chat' ? `${frame.user.id}:${frame.text}` : `news:${frame.n}`)
      return
    }
    if (frame.type !== 'ack' && frame.type !== 'error') return
    const id = String(frame.id ?? '')
    if (id.startsWith('join:')) return this.joinAnswered(run, ws, id.slice(5), frame)
    const sent = this.pending.get(id)
    if (sent === undefined) return
    this.pending.delete(id)
    const view = this.rooms.get(sent.room)!
    if (frame.type === 'ack') {
      run.result.acked++
      const offset: number = frame.data.offset
      this.trace.push(`ack${sent.room}@${offset}/${view.watermark}`)
      if (view.seen(offset)) run.problem(`${this.user}: own offset ${offset} already seen`)
      view.mark(offset)
      view.payloads.set(offset, `${this.user}:${sent.text}`)
      run.sentOffsets.set(`${this.user}:${sent.text}`, offset)
    } else if (frame.code === 'unavailable' || frame.code === 'not_in_room') {
      // Refused, and the sender knows it: it must never show up anywhere.
      run.result.refused++
      run.refusedTexts.add(`${this.user}:${sent.text}`)
    } else {
      run.problem(`${this.user}: message refused with ${frame.code}`)
    }
  }

  /** The `since` offset of the last join of each room on this connection (for the report). */
  private readonly since = new Map<string, number>()
  private joinsSent = 0
  private trace: string[] = []

  private join (ws: WebSocket, room: string): void {
    const view = this.rooms.get(room)!
    const frame: Record<string, unknown> = { type: 'join', room, id: `join:${room}` }
    if (view.epoch !== undefined) frame.since = { epoch: view.epoch, offset: view.watermark }
    this.since.set(room, view.watermark)
    this.joinsSent++
    ws.send(JSON.stringify(frame))
  }

  private joinAnswered (run: ChaosRun, ws: WebSocket, room: string, frame: any): void {
    if (ws !== this.ws) return
    const view = this.rooms.get(room)!
    if (frame.type === 'error') {
      // Redis is away: the position cannot be read. Ask again a little later.
      if (frame.code !== 'unavailable') run.problem(`${this.user}: join ${room} refused with ${frame.code}`)
      run.result.rejoins.retried++
      setTimeout(() => { if (ws === this.ws && ws.readyState === ws.OPEN) this.join(ws, room) }, 200)
      return
    }
    const data = frame.data
    this.trace.push(`joined${room}@${JSON.stringify(data)}/${view.watermark}`)
    const recovered = this.recovering.get(room) ?? 0
    this.recovering.delete(room)
    if (view.epoch === undefined) {
      view.epoch = data.epoch
      view.watermark = data.offset
      view.lastLive = data.offset
    } else if (data.recovered === true) {
      run.result.rejoins.recovered++
      run.result.recoveredMessages += recovered
      if (view.watermark < data.offset) run.problem(`${this.user}: ${room} recovered to ${data.offset}, but saw only up to ${view.watermark}`)
    } else {
      // The server says it could not: what lies between is counted as lost, never silently missing.
      run.result.rejoins.notRecovered++
      if (recovered > 0) run.problem(`${this.user}: ${room} not recovered, yet ${recovered} messages were replayed`)
      const lostNow = data.epoch === view.epoch ? Math.max(0, data.offset - view.watermark) : data.offset
      view.lost += lostNow
      run.result.reportedLost += lostNow
      run.lostRanges.push({ user: this.user, room, epoch: view.epoch, from: view.watermark })
      view.epoch = data.epoch
      view.watermark = data.offset
      view.ahead = new Set([...view.ahead].filter((o) => o > data.offset))
    }
    view.lastLive = Math.max(view.lastLive, view.watermark)
    this.joined.add(room)
  }

  send (run: ChaosRun): void {
    const ws = this.ws
    if (ws === undefined || ws.readyState !== ws.OPEN || this.joined.size === 0) return
    const rooms = [...this.joined]
    const room = rooms[Math.floor(run.rand() * rooms.length)]
    const text = String(this.nextId++)
    const id = `m${text}`
    this.pending.set(id, { room, text })
    run.result.published++
    ws.send(JSON.stringify({ type: 'message', room, text, id }))
  }

  cut (): void {
    this.ws?.terminate()
  }

  close (): void {
    this.stopped = true
    this.ws?.terminate()
  }
}

class ChaosRun {
  readonly result: ChaosResult = {
    problems: [],
    published: 0,
    acked: 0,
    refused: 0,
    unanswered: 0,
    broadcasts: { ok: 0, rejected: 0 },
    cuts: 0,
    rejoins: { recovered: 0, notRecovered: 0, retried: 0 },
    recoveredMessages: 0,
    reportedLost: 0,
    duplicatesDropped: 0,
    deliveriesChecked: 0,
    redisRestarts: 0,
    publisherCuts: 0,
    serverLogs: {},
    closes: {}
  }

  readonly refusedTexts = new Set<string>()
  readonly sentOffsets = new Map<string, number>()
  readonly lostRanges: Array<{ user: string, room: string, epoch: string | undefined, from: number }> = []
  readonly rand: () => number
  urls: string[] = []
  constructor (seed: number) { this.rand = random(seed) }

  /** Warnings and errors the nodes logged, by message (how often). */
  readonly serverLogs = new Map<string, number>()
  serverLog (node: number, line: string): void {
    let msg = line
    try {
      const record = JSON.parse(line)
      if (record.level < 40 && !String(record.msg).includes('reply was lost')) return
      msg = String(record.msg)
    } catch {}
    msg = `node ${node}: ${msg.replace(/[0-9a-f]{12}|\d+/g, 'N')}`
    this.serverLogs.set(msg, (this.serverLogs.get(msg) ?? 0) + 1)
  }

  problem (text: string): void {
    if (this.result.problems.length < 50) this.result.problems.push(text)
  }
}

/** Busy for ARGV[1] ms: Redis reads nobody meanwhile. */
const STALL = `local function now() local t = redis.call('TIME') return t[1] * 1000 + t[2] / 1000 end
local stop = now() + tonumber(ARGV[1])
while now() < stop do end
return 1`

/**
 * Kill a node's publishing connection from Redis's side with commands in flight: Redis stalls for
 * 30 ms (the node's scripts pile up unread), and the kill, sent meanwhile, runs right after, in
 * the same turn as some of those scripts: replies of scripts that ran are lost with the connection.
 */
async function cutPublisher (redis: RedisServer, nodeId: string): Promise<boolean> {
  // No reconnecting: Redis may be down (restarting) right now, and then there is nothing to cut.
  const staller = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  const killer = staller.duplicate()
  staller.on('error', () => {})
  killer.on('error', () => {})
  try {
    await Promise.all([staller.connect(), killer.connect()])
    // Looked up before the stall: CLIENT LIST would wait behind it.
    const id = await redis.clientId(`fastify-ws-rooms-${nodeId}-pub`, killer)
    if (id === undefined) return false
    const stalled = staller.eval(STALL, 0, 30)
    await sleep(10)
    const killed = Number(await killer.client('KILL', 'ID', id)) === 1
    await stalled
    return killed
  } finally {
    staller.disconnect()
    killer.disconnect()
  }
}

export async function runHistoryChaos (options: ChaosOptions): Promise<ChaosResult> {
  const run = new ChaosRun(options.seed)
  const redis = await RedisServer.start({ persistent: true })
  const prefix = uniquePrefix('chaos')
  const apps: FastifyInstance[] = []
  const clients: ChaosClient[] = []
  const timers: NodeJS.Timeout[] = []
  const rooms = Array.from({ length: options.rooms }, (_, i) => `h-${i}`)
  try {
    for (let i = 0; i < options.nodes; i++) {
      const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { run.serverLog(i, line) } } } })
      await app.register(wsRooms, {
        authenticate: (token) => ({ id: token }),
        rateLimit: false,
        // Big enough that nothing ages out during a run: every loss must come from a fault.
        history: { size: 100_000, ttlMs: 600_000 },
        presenceEvents: 'none',
        adapter: redisAdapter({ url: redis.url, prefix, presenceTtl: 2000 })
      })
      await app.listen({ port: 0, host: '127.0.0.1' })
      apps.push(app)
      run.urls.push(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`)
    }
    for (let i = 0; i < options.clients; i++) {
      // Each client in two of the rooms (all of them when there are fewer).
      const mine = rooms.length <= 2 ? rooms : [rooms[i % rooms.length], rooms[(i + 1) % rooms.length]]
      const client = new ChaosClient(`u${i}`, mine)
      clients.push(client)
      client.connect(run, i % options.nodes)
    }
    await sleep(500)

    const started = Date.now()
    timers.push(setInterval(() => { clients[Math.floor(run.rand() * clients.length)].send(run) }, 4))
    timers.push(setInterval(() => {
      run.result.cuts++
      clients[Math.floor(run.rand() * clients.length)].cut()
    }, 150))
    let news = 0
    timers.push(setInterval(() => {
      const app = apps[Math.floor(run.rand() * apps.length)]
      const n = news++
      const room = rooms[n % rooms.length]
      app.rooms.broadcast(room, { type: 'news', room, n }).then(
        () => { run.result.broadcasts.ok++ },
        () => { run.result.broadcasts.rejected++; run.refusedTexts.add(`news:${n}`) })
    }, 50))

    // A node's publishing connection killed by Redis, at even points of the run (Redis may be down then).
    const cutEvery = options.durationMs / (options.publisherCuts + 1)
    if (options.publisherCuts > 0) {
      timers.push(setInterval(() => {
        if (run.result.publisherCuts >= options.publisherCuts) return
        const nodeId = (apps[Math.floor(run.rand() * apps.length)].rooms as unknown as { nodeId: string }).nodeId
        cutPublisher(redis, nodeId).then((cut) => { if (cut) run.result.publisherCuts++ }, () => {})
      }, cutEvery))
    }

    // Redis killed and restarted at even points of the run.
    for (let k = 1; k <= options.redisRestarts; k++) {
      const at = started + (options.durationMs * k) / (options.redisRestarts + 1)
      await sleep(Math.max(0, at - Date.now()))
      options.log(`killing Redis (${k}/${options.redisRestarts})`)
      await redis.stop('SIGKILL')
      await sleep(500 + Math.floor(run.rand() * 1000))
      await redis.start()
      run.result.redisRestarts++
    }
    await sleep(Math.max(0, started + options.durationMs - Date.now()))
    for (const timer of timers.splice(0)) clearInterval(timer)
    options.log('traffic stopped; waiting for every client to catch up')

    // Quiet: every client connected, in every room, and caught up with each room's last offset.
    const deadline = Date.now() + 30_000
    let heads = new Map<string, { epoch: string, offset: number }>()
    for (;;) {
      heads = new Map()
      for (const room of rooms) {
        const page = await apps[0].rooms.history(room, { after: Number.MAX_SAFE_INTEGER }).catch(() => undefined)
        if (page !== undefined) heads.set(room, { epoch: page.epoch, offset: page.offset })
      }
      const behind = clients.filter((c) => c.ws?.readyState !== WebSocket.OPEN || [...c.rooms].some(([room, view]) =>
        !c.joined.has(room) || heads.get(room)?.epoch !== view.epoch || view.watermark < (heads.get(room)?.offset ?? Infinity)))
      if (behind.length === 0) break
      if (Date.now() > deadline) {
        run.problem(`${behind.length} clients never caught up: ${behind.slice(0, 5).map((c) => `${c.user} ${JSON.stringify([...c.rooms].map(([r, v]) => [r, c.joined.has(r), v.epoch === heads.get(r)?.epoch, v.watermark, heads.get(r)?.offset]))}`).join('; ')}`)
        break
      }
      await sleep(200)
    }

    // The count: per room, one payload per offset for everybody; every offset seen by every member.
    for (const room of rooms) {
      const head = heads.get(room)
      if (head === undefined) continue
      const page = await apps[apps.length - 1].rooms.history(room, { after: 0 })
      const truth = new Map<number, string>()
      for (const m of page.messages as any[]) truth.set(m.offset, m.type === 'chat' ? `${m.user.id}:${m.text}` : `news:${m.n}`)
      if (page.messages.length !== head.offset) run.problem(`${room}: the history keeps ${page.messages.length} of ${head.offset} messages`)
      for (const payload of truth.values()) if (run.refusedTexts.has(payload)) run.problem(`${room}: refused ${payload} is in the history`)
      for (const client of clients) {
        const view = client.rooms.get(room)
        if (view === undefined) continue
        for (const [offset, payload] of view.payloads) {
          const expected = truth.get(offset)
          if (view.epoch === head.epoch && expected !== undefined && expected !== payload) run.problem(`${client.user}: ${room}@${offset} is ${payload}, history says ${expected}`)
          if (run.refusedTexts.has(payload)) run.problem(`${client.user}: got ${payload}, which its sender was told was refused`)
        }
        run.result.deliveriesChecked += view.payloads.size
      }
    }
    run.result.serverLogs = Object.fromEntries(run.serverLogs)
    for (const [text, offset] of run.sentOffsets) if (run.refusedTexts.has(text)) run.problem(`${text} acked at ${offset} and refused`)
    return run.result
  } finally {
    for (const timer of timers) clearInterval(timer)
    for (const client of clients) client.close()
    for (const app of apps) await app.close()
    await redis.dispose()
  }
}
