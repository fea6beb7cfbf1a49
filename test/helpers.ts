// Shared test helpers: a real server on 127.0.0.1:0 and a `ws` client that queues what it receives,
// so tests wait for frames and close codes instead of sleeping.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import WebSocket, { type ClientOptions } from 'ws'
import wsRooms, { memoryAdapter } from '../lib/index.js'
import type { RoomsAdapter, WsRoomsOptions } from '../types/index.js'

export interface StartedServer {
  app: FastifyInstance
  /** ws://127.0.0.1:PORT */
  base: string
  /** ws://127.0.0.1:PORT/ws (or the given path) */
  url: string
  port: number
}

export async function startServer (
  options: WsRoomsOptions = {},
  setup?: (app: FastifyInstance) => void | Promise<void>,
  fastifyOptions: FastifyServerOptions = { logger: false }
): Promise<StartedServer> {
  const app = Fastify(fastifyOptions)
  await app.register(wsRooms, options)
  if (setup) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const base = `ws://127.0.0.1:${address.port}`
  return { app, base, url: base + (options.path ?? '/ws'), port: address.port }
}

export interface Closed { code: number, reason: string }

export class TestClient {
  readonly ws: WebSocket
  private readonly queue: any[] = []
  private waiters: Array<{ match: (m: any) => boolean, resolve: (m: any) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }> = []
  readonly closed: Promise<Closed>
  /** Every frame received, in order. */
  readonly received: any[] = []

  constructor (ws: WebSocket) {
    this.ws = ws
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        for (const w of this.waiters) {
          clearTimeout(w.timer)
          w.reject(new Error(`closed ${code} while waiting for a frame`))
        }
        this.waiters = []
        resolve({ code, reason: reason.toString() })
      })
    })
    ws.on('error', () => {})
    ws.on('message', (data, isBinary) => {
      const text = data.toString()
      let msg: any
      try { msg = JSON.parse(text) } catch { msg = isBinary ? data : text }
      this.received.push(msg)
      const i = this.waiters.findIndex((w) => w.match(msg))
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1)
        clearTimeout(w.timer)
        w.resolve(msg)
      } else {
        this.queue.push(msg)
      }
    })
  }

  /** The next received frame matching `match` (default: any), in arrival order. */
  next (match: ((m: any) => boolean) | Record<string, unknown> = () => true, timeoutMs = 5000): Promise<any> {
    const fn = typeof match === 'function' ? match : (m: any) => m !== null && typeof m === 'object' && Object.entries(match).every(([k, v]) => m[k] === v)
    const i = this.queue.findIndex(fn)
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0])
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer)
        reject(new Error(`no matching frame within ${timeoutMs} ms; pending: ${JSON.stringify(this.queue).slice(0, 500)}`))
      }, timeoutMs)
      this.waiters.push({ match: fn, resolve, reject, timer })
    })
  }

  /** Frames received but not yet taken with next(). */
  pending (): any[] { return [...this.queue] }

  send (frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** Send a frame carrying `id` and wait for the ack or error with that id. */
  async request (frame: Record<string, unknown>, id: string | number = Math.random().toString(36).slice(2)): Promise<any> {
    this.send({ ...frame, id })
    return this.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === id)
  }

  async close (): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close()
    return this.closed
  }
}

/** Open a client and wait for the welcome frame. */
export async function connect (url: string, options: ClientOptions & { protocols?: string | string[] } = {}): Promise<TestClient & { welcome: any }> {
  const { protocols, ...rest } = options
  const ws = new WebSocket(url, protocols, rest)
  const client = new TestClient(ws) as TestClient & { welcome: any }
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
  client.welcome = await client.next({ type: 'system', event: 'welcome' })
  return client
}

/** Try an upgrade that should be refused; resolves with the HTTP status, the JSON body and the headers. */
export function refusedUpgrade (url: string, options: ClientOptions & { protocols?: string | string[] } = {}): Promise<{ status: number, body: any, headers: Record<string, string | string[] | undefined> }> {
  const { protocols, ...rest } = options
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, rest)
    ws.on('open', () => { ws.terminate(); reject(new Error('upgrade was accepted')) })
    ws.on('error', (err) => reject(err))
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => {
        let parsed: any = body
        try { parsed = JSON.parse(body) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers })
      })
    })
  })
}

// ---- Added for the contract tests ----

/** Log lines written by Fastify's logger (pino), for `Fastify({ logger: { level: 'trace', stream } })`. */
export interface CapturedLogs {
  stream: { write: (line: string) => void }
  /** Raw lines as written. */
  lines: string[]
  /** Parsed JSON lines. */
  records: () => any[]
}

export function captureLogs (): CapturedLogs {
  const lines: string[] = []
  return {
    stream: { write: (chunk: string) => { for (const l of String(chunk).split('\n')) if (l.length > 0) lines.push(l) } },
    lines,
    records: () => lines.map((l) => { try { return JSON.parse(l) } catch { return { msg: l } } })
  }
}

/**
 * A round trip through the server on this connection: frames the server sent before answering
 * are delivered before the answer, so after this resolves "nothing more arrived" can be checked.
 * Uses a `leave` of a room never joined, answered with `not_in_room` carrying our id.
 */
export async function roundTrip (client: TestClient): Promise<void> {
  const id = 'rt-' + Math.random().toString(36).slice(2)
  client.send({ type: 'leave', room: 'never-joined-' + id, id })
  const answer = await client.next((m) => m !== null && typeof m === 'object' && m.id === id)
  if (answer.type !== 'error' || answer.code !== 'not_in_room') throw new Error('unexpected round-trip answer ' + JSON.stringify(answer))
}

/** Poll `check` until it returns a value other than undefined (each try waits `intervalMs`). */
export async function eventually<T> (check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Resolve once `predicate()` is truthy (checked every few ms); reject after `timeoutMs`. */
export async function until (predicate: () => unknown, timeoutMs = 5000, what = 'condition'): Promise<void> {
  await eventually(async () => (await predicate()) ? true : undefined, what, timeoutMs, 5)
}

/** The range `listen(0)` draws ports from (Linux: net.ipv4.ip_local_port_range). */
function ephemeralRange (): { low: number, high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (Number.isInteger(low) && Number.isInteger(high) && low <= high) return { low, high }
  } catch {}
  return { low: 32768, high: 60999 }
}

export function isAddressInUse (err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE'
}

/** Listen on 127.0.0.1:`port` and close again: true when the port was free. */
async function portIsFree (port: number): Promise<boolean> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', (err) => isAddressInUse(err) ? resolve(false) : reject(err))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/**
 * A port nothing listens on, for a server that must come back on the same port (a restart its
 * clients reconnect to) or a client that must find nothing there. Taken outside the range that
 * `listen(0)` draws from: the other test file tap runs beside this one binds port 0 everywhere,
 * and the kernel could hand it a port we released a moment ago, between our close and our next
 * bind. A fixed-port bind elsewhere could still take it, so bind it with `retryAddressInUse`.
 */
export async function reservedPort (): Promise<number> {
  const { low, high } = ephemeralRange()
  // Below the ephemeral range when there is room (usually 10000..32767), else above it.
  const [from, to] = low - 10_000 >= 1000 ? [10_000, low - 1] : [high + 1, 65_535]
  for (let i = 0; i < 50; i++) {
    const port = from + Math.floor(Math.random() * (to - from + 1))
    if (await portIsFree(port)) return port
  }
  throw new Error(`no free port found in ${from}..${to}`)
}

/**
 * Run `bind` (a listen on a fixed port) again while it fails with EADDRINUSE, for up to
 * `timeoutMs`: a port another process holds for a moment is not a test failure.
 */
export async function retryAddressInUse<T> (bind: () => Promise<T>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await bind()
    } catch (err) {
      if (!isAddressInUse(err) || Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

/** Open `n` clients (each waits for its welcome). */
export async function connectMany (url: string, n: number, options: ClientOptions & { protocols?: string | string[] } = {}): Promise<Array<TestClient & { welcome: any }>> {
  const clients = []
  for (let i = 0; i < n; i++) clients.push(await connect(url, options))
  return clients
}

/** Join `room` with an id and wait for the ack (throws on an error frame). */
export async function join (client: TestClient, room: string): Promise<void> {
  const answer = await client.request({ type: 'join', room })
  if (answer.type !== 'ack') throw new Error(`join ${room} refused: ${JSON.stringify(answer)}`)
}

/** Drop every connection of `clients` without a close handshake (for teardown). */
export function terminateAll (clients: TestClient[]): void {
  for (const c of clients) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate()
}

export interface Fixture extends StartedServer {
  /** Connect a client that is terminated when the test ends. */
  open: (options?: ClientOptions & { protocols?: string | string[], path?: string }) => Promise<TestClient & { welcome: any }>
  /** Every client opened through `open` or `track`. */
  clients: TestClient[]
  /** Terminate `client` at teardown too. */
  track: <C extends TestClient>(client: C) => C
}

/** A server that is closed, with all its clients, when the test `t` ends. */
export async function serve (
  t: { teardown: (fn: () => unknown) => void },
  options: WsRoomsOptions = {},
  setup?: (app: FastifyInstance) => void | Promise<void>,
  fastifyOptions: FastifyServerOptions = { logger: false }
): Promise<Fixture> {
  const server = await startServer(options, setup, fastifyOptions)
  const clients: TestClient[] = []
  t.teardown(async () => {
    terminateAll(clients)
    await server.app.close()
  })
  const track = <C extends TestClient>(client: C): C => { clients.push(client); return client }
  const open = async (opts: ClientOptions & { protocols?: string | string[], path?: string } = {}) => {
    const { path, ...rest } = opts
    return track(await connect(path === undefined ? server.url : server.base + path, rest))
  }
  return { ...server, open, clients, track }
}

/** The client's close, or a rejection after `timeoutMs` (so a missing close fails fast instead of hanging). */
export function closedWithin (client: TestClient, timeoutMs = 10_000): Promise<Closed> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the connection was not closed within ${timeoutMs} ms`)), timeoutMs)
  })
  return Promise.race([client.closed, timeout]).finally(() => clearTimeout(timer))
}

/** The memory adapter, with one step of every join (`subscribeRoom` by default) held until `release()` while `hold` is on. */
export function gatedAdapter (step: 'subscribeRoom' | 'addPresence' = 'subscribeRoom'): { adapter: RoomsAdapter, hold: () => void, release: () => void } {
  const inner = memoryAdapter()
  let gate: { promise: Promise<void>, open: () => void } | undefined
  return {
    adapter: {
      ...inner,
      init: inner.init.bind(inner),
      members: inner.members.bind(inner),
      [step]: () => gate?.promise
    },
    hold: () => {
      let open!: () => void
      const promise = new Promise<void>((resolve) => { open = resolve })
      gate = { promise, open }
    },
    release: () => { gate?.open(); gate = undefined }
  }
}
