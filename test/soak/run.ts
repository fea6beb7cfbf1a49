// Churn soak: thousands of short sessions against one server, each connecting, joining rooms,
// chatting, leaving, then closing cleanly or dropping abruptly (terminate, or half a frame and
// a reset). At the end it checks that
//   - every message sent to a room reached, exactly once and in order, each member that was in
//     the room the whole time (joined before it was sent, still there when its ack came back),
//     and nobody got a message twice or from a room it was not in;
//   - no room, connection, timer (process.getActiveResourcesInfo()) or listener is left;
//   - the heap after a full GC is back within a small bound of where it started.
//
//   npm run soak                                   60 s
//   npm run soak -- --duration 300 --concurrency 400
//   SOAK_DURATION=120 SOAK_SEED=7 npm run soak
// test/soak-short.test.ts runs the same thing for ~10 s inside `npm test`.
import v8 from 'node:v8'
import vm from 'node:vm'
import { pathToFileURL } from 'node:url'
import type { Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import wsRooms from '../../lib/index.js'
import { internalsOf } from '../../lib/api.js'
import type { RoomsEventName } from '../../types/index.js'

export interface SoakOptions {
  /** How long new sessions keep starting. */
  durationMs: number
  /** Sessions alive at once. */
  concurrency: number
  /** Size of the room pool sessions pick from. */
  rooms: number
  seed: number
  /** Allowed heap growth after GC, in MB (on top of 10% of the starting heap). */
  heapSlackMB: number
  log: (line: string) => void
}

export interface SoakResult {
  ok: boolean
  problems: string[]
  seconds: number
  sessions: number
  graceful: number
  dropped: number
  refusedUpgrades: number
  joins: number
  leaves: number
  messages: number
  /** Deliveries that had to happen (member for the whole time) and did, exactly once. */
  requiredDeliveries: number
  missing: number
  duplicates: number
  outOfOrder: number
  strayDeliveries: number
  otherDeliveries: number
  heapStartMB: number
  heapEndMB: number
  leftover: { rooms: number, connections: number, resources: Record<string, number>, listeners: Record<string, number> }
  stats: Record<string, number>
}

const DEFAULTS: SoakOptions = {
  durationMs: 60_000,
  concurrency: 250,
  rooms: 24,
  seed: 1,
  heapSlackMB: 8,
  log: (line) => { process.stdout.write(line + '\n') }
}

/** Small seeded PRNG (mulberry32), so a run can be repeated. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function collectGarbage (): () => void {
  const existing = (globalThis as { gc?: () => void }).gc
  if (typeof existing === 'function') return existing
  // No --expose-gc: turn the flag on at runtime and fetch gc from a fresh context.
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

async function heapAfterGc (gc: () => void): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
}

function resourceCounts (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1
  return counts
}

function diffCounts (after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const diff: Record<string, number> = {}
  for (const key of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const d = (after[key] ?? 0) - (before[key] ?? 0)
    if (d !== 0) diff[key] = d
  }
  return diff
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface Interval {
  session: number
  /** When the join's ack reached the client. */
  from: number
  /** When the client sent its leave, closed, dropped, or the run ended. */
  to: number
  end: 'leave' | 'close' | 'drop' | 'open'
}

interface Sent {
  room: string
  session: number
  seq: number
  sentAt: number
  /** When the ack came back; NaN if it never did (the sender dropped first). */
  ackAt: number
}

/** Everything the run records, dropped as a whole before the final heap reading. */
class Ledger {
  readonly messages: Sent[] = []
  /** receivers[messageNo]: session numbers that got it, one entry per delivery. */
  readonly receivers: number[][] = []
  readonly intervals = new Map<string, Interval[]>()
  outOfOrder = 0
  stray = 0
  other = 0

  interval (room: string, iv: Interval): void {
    let list = this.intervals.get(room)
    if (list === undefined) this.intervals.set(room, (list = []))
    list.push(iv)
  }
}

/** A soak client: a `ws` socket with request/response by id and a chat counter. */
class SoakClient {
  readonly ws: WebSocket
  readonly session: number
  user = ''
  private readonly pending = new Map<string, (reply: any) => void>()
  private readonly lastSeq = new Map<string, number>()
  private nextId = 0
  readonly opened: Promise<void>
  readonly closed: Promise<number>

  constructor (url: string, session: number, ledger: Ledger) {
    this.session = session
    this.ws = new WebSocket(url)
    this.ws.on('error', () => {})
    let welcomed!: () => void
    let failed!: (err: Error) => void
    this.opened = new Promise((resolve, reject) => { welcomed = resolve; failed = reject })
    this.ws.once('unexpected-response', (_req, res) => { res.resume(); failed(new Error(`HTTP ${res.statusCode}`)); this.ws.terminate() })
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => {
      failed(new Error(`closed ${code} before the welcome`))
      for (const resolveReply of this.pending.values()) resolveReply({ type: 'closed' })
      this.pending.clear()
      resolve(code)
    }))
    this.ws.on('message', (data) => {
      const m = JSON.parse(data.toString())
      if (m.type === 'chat') {
        const match = /^m(\d+):(\d+):(\d+)$/.exec(m.text)
        if (match === null) { ledger.stray++; return }
        const no = Number(match[1])
        if (no >= ledger.receivers.length) { ledger.stray++; return }
        ledger.receivers[no].push(session)
        const key = `${match[2]}|${m.room}`
        const seq = Number(match[3])
        if ((this.lastSeq.get(key) ?? -1) >= seq) ledger.outOfOrder++
        this.lastSeq.set(key, seq)
      } else if (m.type === 'ack' || m.type === 'error') {
        const resolveReply = this.pending.get(m.id)
        if (resolveReply === undefined) { ledger.other++; return }
        this.pending.delete(m.id)
        resolveReply(m)
      } else if (m.type === 'system' && m.event === 'welcome') {
        this.user = m.user.id
        welcomed()
      }
    })
  }

  request (frame: Record<string, unknown>): Promise<any> {
    const id = `${this.session}-${++this.nextId}`
    return new Promise((resolve) => {
      if (this.ws.readyState !== WebSocket.OPEN) { resolve({ type: 'closed' }); return }
      this.pending.set(id, resolve)
      this.ws.send(JSON.stringify({ ...frame, id }))
    })
  }
}

export async function runSoak (partial: Partial<SoakOptions> = {}): Promise<SoakResult> {
  const o: SoakOptions = { ...DEFAULTS, ...partial }
  const random = prng(o.seed)
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]
  const gc = collectGarbage()
  const problems: string[] = []
  const started = Date.now()

  const resourcesBeforeServer = resourceCounts()
  const processListenersBefore = {
    uncaughtException: process.listenerCount('uncaughtException'),
    unhandledRejection: process.listenerCount('unhandledRejection'),
    warning: process.listenerCount('warning')
  }

  const app: FastifyInstance = Fastify({ logger: false })
  await app.register(wsRooms, {
    // Every client comes from 127.0.0.1: leave room for the whole run plus the closing ones.
    maxConnectionsPerIp: o.concurrency * 4 + 100,
    maxConnections: o.concurrency * 4 + 100
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const url = `ws://127.0.0.1:${port}/ws`

  let connects = 0
  let disconnects = 0
  const onConnect = (): void => { connects++ }
  const onDisconnect = (): void => { disconnects++ }
  app.rooms.on('connect', onConnect)
  app.rooms.on('disconnect', onDisconnect)

  let ledger: Ledger | null = new Ledger()
  const counters = { sessions: 0, graceful: 0, dropped: 0, refused: 0, joins: 0, leaves: 0 }
  const rooms = Array.from({ length: o.rooms }, (_, i) => `soak-${i}`)

  async function session (n: number, book: Ledger): Promise<void> {
    const client = new SoakClient(url, n, book)
    try {
      await client.opened
    } catch {
      counters.refused++
      client.ws.terminate()
      await client.closed
      return
    }
    const mine = new Map<string, Interval>()
    const closeIntervals = (end: Interval['end']): void => {
      const now = performance.now()
      for (const iv of mine.values()) { iv.to = now; iv.end = end }
      mine.clear()
    }
    const actions = 2 + Math.floor(random() * 8)
    for (let a = 0; a < actions && client.ws.readyState === WebSocket.OPEN; a++) {
      const roll = random()
      if (mine.size === 0 || (roll < 0.3 && mine.size < 3)) {
        const room = pick(rooms)
        if (mine.has(room)) continue
        const reply = await client.request({ type: 'join', room })
        if (reply.type !== 'ack') { if (reply.type !== 'closed') problems.push(`join refused: ${JSON.stringify(reply)}`); break }
        const iv: Interval = { session: n, from: performance.now(), to: Infinity, end: 'open' }
        mine.set(room, iv)
        book.interval(room, iv)
        counters.joins++
      } else if (roll < 0.45) {
        const room = pick([...mine.keys()])
        const iv = mine.get(room)!
        iv.to = performance.now()
        iv.end = 'leave'
        mine.delete(room)
        const reply = await client.request({ type: 'leave', room })
        if (reply.type !== 'ack' && reply.type !== 'closed') problems.push(`leave refused: ${JSON.stringify(reply)}`)
        counters.leaves++
      } else {
        const burst = 1 + Math.floor(random() * 3)
        for (let b = 0; b < burst; b++) {
          const room = pick([...mine.keys()])
          const no = book.messages.length
          const msg: Sent = { room, session: n, seq: no, sentAt: performance.now(), ackAt: NaN }
          book.messages.push(msg)
          book.receivers.push([])
          const reply = await client.request({ type: 'message', room, text: `m${no}:${n}:${no}` })
          if (reply.type === 'ack') msg.ackAt = performance.now()
          else if (reply.type !== 'closed') problems.push(`message refused: ${JSON.stringify(reply)}`)
        }
      }
      if (random() < 0.5) await sleep(Math.floor(random() * 150))
    }

    const ending = random()
    if (ending < 0.65) {
      closeIntervals('close')
      client.ws.close()
      counters.graceful++
    } else if (ending < 0.9) {
      closeIntervals('drop')
      client.ws.terminate()
      counters.dropped++
    } else {
      // Half a frame on the wire, then a reset.
      closeIntervals('drop')
      const socket = (client.ws as unknown as { _socket: Socket | null })._socket
      if (socket !== null && !socket.destroyed) {
        socket.write(Buffer.from([0x81, 0xfe, 0x01, 0x00, 1, 2, 3, 4, 0x7b]))
        socket.resetAndDestroy()
      } else {
        client.ws.terminate()
      }
      counters.dropped++
    }
    await client.closed
  }

  // Warm-up (lazily loaded code, JIT), then the heap and resource baselines.
  await Promise.all(Array.from({ length: Math.min(50, o.concurrency) }, (_, i) => session(-1 - i, new Ledger())))
  await waitFor(() => app.rooms.stats().connections === 0, 10_000)
  const resourcesBaseline = resourceCounts()
  const heapStart = await heapAfterGc(gc)
  const serverListenersBefore = { upgrade: app.server.listenerCount('upgrade'), connection: app.server.listenerCount('connection') }
  for (const key of Object.keys(counters) as Array<keyof typeof counters>) counters[key] = 0

  // The churn: keep `concurrency` sessions alive until the duration is over.
  const deadline = Date.now() + o.durationMs
  let lastReport = Date.now()
  const live = new Set<Promise<void>>()
  while (Date.now() < deadline) {
    while (live.size < o.concurrency) {
      const p = session(counters.sessions++, ledger)
        .catch((err: unknown) => { problems.push(`session crashed: ${String(err)}`) })
        .finally(() => { live.delete(p) })
      live.add(p)
    }
    await Promise.race(live)
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now()
      const st = app.rooms.stats()
      o.log(`  ${Math.round((Date.now() - started) / 1000)} s: ${counters.sessions} sessions, ${st.connections} connected, ` +
        `${st.rooms} rooms, ${ledger.messages.length} messages, heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MB`)
    }
  }
  await Promise.all(live)
  o.log(`  ${Math.round((Date.now() - started) / 1000)} s: churn over (${counters.sessions} sessions); checking`)

  // Everyone is gone: the server forgets them.
  if (!(await waitFor(() => app.rooms.stats().connections === 0, 15_000))) {
    problems.push(`connections left on the server: ${app.rooms.stats().connections}`)
  }
  const leftRooms = app.rooms.rooms()
  if (leftRooms.length > 0) problems.push(`rooms left: ${JSON.stringify(leftRooms.slice(0, 5))}`)
  if (connects !== disconnects) problems.push(`connect events ${connects} != disconnect events ${disconnects}`)
  // Inside the node (each of its parts behind fastify.rooms): every map or set of per-connection
  // state must be empty again, and so must counters of sockets in flight (whatever the fields are
  // called today).
  const parts = internalsOf(app.rooms)
  if (parts === undefined) problems.push('fastify.rooms is not a facade over the node\'s parts: nothing to check inside')
  for (const [name, part] of Object.entries(parts ?? {})) {
    // The counters' maps are tallies by close code, error code and status: bounded, and kept for good.
    if (name === 'counters') continue
    for (const [field, value] of Object.entries(part as object)) {
      if ((value instanceof Map || value instanceof Set) && value.size > 0 && !/handler/i.test(field)) {
        problems.push(`${name}.${field} still holds ${value.size} entries`)
      }
      if (typeof value === 'number' && /admitted|pending|inflight/i.test(field) && value !== 0) {
        problems.push(`${name}.${field} is ${value}, not 0`)
      }
    }
  }

  // ---- delivery: exactly once to whole-time members, at most once to anyone in the room at some point ----
  // One sweep per room over its messages in send order, keeping the intervals open at that time.
  let required = 0
  let missing = 0
  let duplicates = 0
  let stray = ledger.stray
  const byRoom = new Map<string, number[]>()
  for (let no = 0; no < ledger.messages.length; no++) {
    const room = ledger.messages[no].room
    let list = byRoom.get(room)
    if (list === undefined) byRoom.set(room, (list = []))
    list.push(no)
  }
  for (const [room, numbers] of byRoom) {
    const intervals = [...(ledger.intervals.get(room) ?? [])].sort((x, y) => x.from - y.from)
    const everMember = new Set(intervals.map((iv) => iv.session))
    let next = 0
    let active: Interval[] = []
    for (const no of numbers) {
      const m = ledger.messages[no]
      while (next < intervals.length && intervals[next].from < m.sentAt) active.push(intervals[next++])
      active = active.filter((iv) => iv.to > m.sentAt)
      const got = new Map<number, number>()
      for (const r of ledger.receivers[no]) got.set(r, (got.get(r) ?? 0) + 1)
      for (const [r, count] of got) {
        if (count > 1) duplicates += count - 1
        if (!everMember.has(r)) stray++
      }
      if (!Number.isFinite(m.ackAt)) continue
      for (const iv of active) {
        if (iv.session === m.session || iv.to <= m.ackAt || iv.end === 'drop') continue
        required++
        if ((got.get(iv.session) ?? 0) === 0) missing++
      }
    }
  }
  if (missing > 0) problems.push(`${missing} required deliveries missing`)
  if (duplicates > 0) problems.push(`${duplicates} duplicate deliveries`)
  if (ledger.outOfOrder > 0) problems.push(`${ledger.outOfOrder} deliveries out of order`)
  if (stray > 0) problems.push(`${stray} deliveries to clients that were never in the room`)
  if (ledger.other > 0) problems.push(`${ledger.other} replies that answered no request`)
  const messages = ledger.messages.length
  const outOfOrder = ledger.outOfOrder
  const other = ledger.other

  // ---- leftovers: timers and handles, listeners, heap ----
  app.rooms.off('connect', onConnect)
  app.rooms.off('disconnect', onDisconnect)
  const listeners: Record<string, number> = {}
  for (const event of ['connect', 'disconnect', 'join', 'leave']) {
    // RoomsApi has on/off; the node's events behind it can count.
    const n = internalsOf(app.rooms)?.events.listenerCount(event as RoomsEventName) ?? 0
    if (n > 0) listeners[`rooms.${event}`] = n
  }
  const serverListeners = { upgrade: app.server.listenerCount('upgrade'), connection: app.server.listenerCount('connection') }
  if (serverListeners.upgrade !== serverListenersBefore.upgrade) listeners['server.upgrade'] = serverListeners.upgrade - serverListenersBefore.upgrade
  if (serverListeners.connection !== serverListenersBefore.connection) listeners['server.connection'] = serverListeners.connection - serverListenersBefore.connection
  if (Object.keys(listeners).length > 0) problems.push(`listeners left: ${JSON.stringify(listeners)}`)

  // Let closing sockets finish their last callbacks before counting what is still active.
  await waitFor(() => Object.keys(diffCounts(resourceCounts(), resourcesBaseline)).length === 0, 5000)
  const resources = diffCounts(resourceCounts(), resourcesBaseline)
  if (Object.keys(resources).length > 0) problems.push(`active resources beyond the baseline while the server runs: ${JSON.stringify(resources)}`)

  ledger = null // the run's own records, before the heap is read
  const heapEnd = await heapAfterGc(gc)
  const allowed = o.heapSlackMB * 1048576 + heapStart * 0.1
  if (heapEnd - heapStart > allowed) {
    problems.push(`heap grew from ${(heapStart / 1048576).toFixed(1)} MB to ${(heapEnd / 1048576).toFixed(1)} MB after GC (allowed +${(allowed / 1048576).toFixed(1)} MB)`)
  }

  const stats = { ...app.rooms.stats() }
  await app.close()
  await waitFor(() => Object.keys(diffCounts(resourceCounts(), resourcesBeforeServer)).length === 0, 5000)
  const afterClose = diffCounts(resourceCounts(), resourcesBeforeServer)
  if (Object.keys(afterClose).length > 0) problems.push(`active resources left after fastify.close(): ${JSON.stringify(afterClose)}`)
  for (const [event, before] of Object.entries(processListenersBefore)) {
    const now = process.listenerCount(event)
    if (now !== before) problems.push(`process '${event}' listeners: ${before} before, ${now} after`)
  }

  return {
    ok: problems.length === 0,
    problems,
    seconds: (Date.now() - started) / 1000,
    sessions: counters.sessions,
    graceful: counters.graceful,
    dropped: counters.dropped,
    refusedUpgrades: counters.refused,
    joins: counters.joins,
    leaves: counters.leaves,
    messages,
    requiredDeliveries: required,
    missing,
    duplicates,
    outOfOrder,
    strayDeliveries: stray,
    otherDeliveries: other,
    heapStartMB: heapStart / 1048576,
    heapEndMB: heapEnd / 1048576,
    leftover: { rooms: leftRooms.length, connections: stats.connections, resources: { ...resources, ...afterClose }, listeners },
    stats
  }
}

async function waitFor (predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

function argValue (name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  if (i !== -1) return process.argv[i + 1]
  const inline = process.argv.find((a) => a.startsWith(`--${name}=`))
  return inline?.slice(name.length + 3)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seconds = Number(argValue('duration') ?? process.env.SOAK_DURATION ?? 60)
  const options: Partial<SoakOptions> = {
    durationMs: seconds * 1000,
    concurrency: Number(argValue('concurrency') ?? process.env.SOAK_CONCURRENCY ?? DEFAULTS.concurrency),
    rooms: Number(argValue('rooms') ?? process.env.SOAK_ROOMS ?? DEFAULTS.rooms),
    seed: Number(argValue('seed') ?? process.env.SOAK_SEED ?? DEFAULTS.seed)
  }
  process.stdout.write(`soak: ${seconds} s, ${options.concurrency} sessions at once, ${options.rooms} rooms, seed ${options.seed}\n`)
  const result = await runSoak(options)
  const { problems, ...figures } = result
  process.stdout.write(JSON.stringify(figures, null, 2) + '\n')
  if (problems.length > 0) {
    process.stdout.write('PROBLEMS:\n' + problems.map((p) => `  - ${p}`).join('\n') + '\n')
    process.exitCode = 1
  } else {
    process.stdout.write('soak: clean\n')
  }
}
