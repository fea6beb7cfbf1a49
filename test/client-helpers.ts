// Helpers for the client tests: a server that can restart on the same port, a recorder that turns
// client events into awaitable queues, and a WebSocket that hides handshake statuses the way
// browsers do.
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import type { Socket } from 'node:net'
import { connect as connectClient, type RoomsClient, type RoomsClientError } from '../lib/client/index.js'
import wsRooms from '../lib/index.js'
import type { ConnectOptions, WebSocketConstructorLike, WebSocketLike } from '../types/client.js'
import type { WsRoomsOptions } from '../types/index.js'
import { isAddressInUse, reservedPort, retryAddressInUse } from './helpers.js'

export interface Server {
  app: FastifyInstance
  port: number
  url: string
  /** TCP sockets accepted, to cut connections (the client then sees 1006). */
  sockets: Set<Socket>
  /** Upgrade requests that reached the route, accepted or not. */
  upgrades: Array<{ url: string, protocol: string | undefined, authorization: string | undefined }>
}

/**
 * A rooms server on 127.0.0.1, on `port` (0: any free port; a fixed port, e.g. a restart on the
 * port of a server just closed, is retried while another process holds it for a moment).
 */
export async function listen (
  options: WsRoomsOptions = {},
  setup?: (app: FastifyInstance) => void | Promise<void>,
  port = 0
): Promise<Server> {
  if (port === 0) return await listenOnce(options, setup, 0)
  return await retryAddressInUse(async () => await listenOnce(options, setup, port))
}

/**
 * A rooms server on a port outside the ephemeral range (see `reservedPort`), for a test that
 * restarts it on the same port: no other test can be handed that port in between.
 */
export async function listenRestartable (
  options: WsRoomsOptions = {},
  setup?: (app: FastifyInstance) => void | Promise<void>
): Promise<Server> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await listenOnce(options, setup, await reservedPort())
    } catch (err) {
      if (!isAddressInUse(err) || attempt >= 5) throw err
    }
  }
}

async function listenOnce (
  options: WsRoomsOptions,
  setup: ((app: FastifyInstance) => void | Promise<void>) | undefined,
  port: number
): Promise<Server> {
  const app = Fastify({ logger: false })
  const sockets = new Set<Socket>()
  const upgrades: Server['upgrades'] = []
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  app.addHook('onRequest', async (request) => {
    if (request.headers.upgrade !== undefined) {
      const protocol = request.headers['sec-websocket-protocol']
      upgrades.push({ url: request.url, protocol: typeof protocol === 'string' ? protocol : undefined, authorization: request.headers.authorization })
    }
  })
  await app.register(wsRooms, options)
  if (setup !== undefined) await setup(app)
  try {
    await app.listen({ port, host: '127.0.0.1' })
  } catch (err) {
    await app.close()
    throw err
  }
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, url: `ws://127.0.0.1:${address.port}/ws`, sockets, upgrades }
}

/** Fast reconnects for tests: no test waits on the defaults. */
export const fastReconnect = { initialDelayMs: 5, maxDelayMs: 40, factor: 2, jitter: 0.5 }
/** And after a server restart (1001, 1012, 1013): a short random wait, not the default 5 s. */
export const fastRestartJitterMs = 20

/**
 * Every event of a client, recorded in order; `next(event, match)` resolves with the first
 * unconsumed one that matches (already recorded or yet to come).
 */
export class Recorder {
  readonly log: Array<{ event: string, args: any[] }> = []
  private readonly consumed = new Set<number>()
  private waiters: Array<{ event: string, match: (...args: any[]) => boolean, resolve: (args: any[]) => void }> = []

  constructor (client: RoomsClient<any>, extra: string[] = []) {
    for (const event of ['open', 'close', 'reconnecting', 'state', 'chat', 'system', 'error', ...extra]) {
      client.on(event as 'open', (...args: any[]) => this.record(event, args))
    }
  }

  private record (event: string, args: any[]): void {
    const index = this.log.push({ event, args }) - 1
    const i = this.waiters.findIndex((w) => w.event === event && w.match(...args))
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1)
      this.consumed.add(index)
      w.resolve(args)
    }
  }

  /** The arguments of the next `event` matching `match`, waiting up to `timeoutMs`. */
  next (event: string, match: (...args: any[]) => boolean = () => true, timeoutMs = 10000): Promise<any[]> {
    const index = this.log.findIndex((e, i) => !this.consumed.has(i) && e.event === event && match(...e.args))
    if (index >= 0) {
      this.consumed.add(index)
      return Promise.resolve(this.log[index].args)
    }
    return new Promise((resolve, reject) => {
      const waiter = { event, match, resolve: (args: any[]) => { clearTimeout(timer); resolve(args) } }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        reject(new Error(`no "${event}" event within ${timeoutMs} ms; seen: ${this.log.map((e) => e.event).join(' ')}`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** First argument of the next matching event. */
  async first (event: string, match: (...args: any[]) => boolean = () => true): Promise<any> {
    return (await this.next(event, match))[0]
  }

  events (name: string): any[][] {
    return this.log.filter((e) => e.event === name).map((e) => e.args)
  }
}

/** Open a client with `ws`, fast reconnects, and a recorder; closed at the end of the test. */
export function openClient (
  t: { teardown: (fn: () => unknown) => void },
  url: string,
  options: ConnectOptions = {}
): { client: RoomsClient<any>, events: Recorder } {
  const client = connectClient(url, { WebSocket, reconnect: fastReconnect, restartJitterMs: fastRestartJitterMs, ...options })
  const events = new Recorder(client, ['typing'])
  t.teardown(() => client.close())
  return { client, events }
}

/** Stop a server and wait until it is closed (clients get 1001). */
export async function stop (server: Server): Promise<void> {
  await server.app.close()
}

/**
 * A WebSocket that shows only what a browser shows: a refused upgrade is an `error` event
 * without details followed by a close with 1006, indistinguishable from a dead server.
 */
export class BrowserLikeWebSocket implements WebSocketLike {
  static created = 0
  private readonly inner: WebSocket

  constructor (url: string, protocols?: string | string[]) {
    BrowserLikeWebSocket.created++
    this.inner = new WebSocket(url, protocols)
  }

  get readyState (): number { return this.inner.readyState }
  get protocol (): string { return this.inner.protocol }
  send (data: string): void { this.inner.send(data) }
  close (code?: number, reason?: string): void { this.inner.close(code, reason) }

  addEventListener (type: 'open' | 'message' | 'close' | 'error', listener: (event: any) => void): void {
    if (type === 'error') this.inner.addEventListener('error', () => listener({ type: 'error' }))
    else if (type === 'close') this.inner.addEventListener('close', (e) => listener({ type: 'close', code: e.code, reason: e.reason, wasClean: e.wasClean }))
    else this.inner.addEventListener(type, listener)
  }

  removeEventListener (): void {}
}

/** The error `promise` rejects with; throws if it resolves. */
export async function rejection (promise: Promise<unknown>): Promise<RoomsClientError> {
  try {
    await promise
  } catch (err) {
    return err as RoomsClientError
  }
  throw new Error('expected a rejection')
}

/** A `ws` WebSocket that keeps its instances, so a test can cut the client's own connection. */
export class CuttableWebSocket extends WebSocket {
  static last: CuttableWebSocket | undefined
  constructor (url: string, protocols?: string | string[]) {
    super(url, protocols)
    CuttableWebSocket.last = this
  }
}

/** A token function (giving `value`) that, once `hold()` was called, makes the next connection attempt wait for `release()`. */
export function reconnectGate (value = 'any'): { token: () => Promise<string>, hold: () => void, release: () => void } {
  let gate: Promise<void> | undefined
  let open: (() => void) | undefined
  return {
    token: async () => { await gate; return value },
    hold: () => { gate = new Promise((resolve) => { open = resolve }) },
    release: () => { open?.(); gate = undefined }
  }
}

/**
 * A load balancer in front of several nodes, seen from the client: a `ws` WebSocket class whose
 * connections go to the port `sendTo` picked last (as a balancer that took a draining node out
 * of rotation sends new connections to the others), whatever port the client's URL names.
 */
export function balancer (port: number): { WebSocket: WebSocketConstructorLike, sendTo: (port: number) => void } {
  let target = port
  class Balanced extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      const to = new URL(url)
      to.port = String(target)
      super(to.href, protocols)
    }
  }
  return { WebSocket: Balanced, sendTo: (p) => { target = p } }
}
