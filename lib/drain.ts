// Draining a node before it stops: new upgrades are turned away (503 with Retry-After, in the
// handshake) and the node's connections are closed with 1012 "Service restart", spread evenly
// over a window, so their clients arrive at the other nodes over that window instead of all in
// the same second. One timer walks the list, not one per connection.
import type { FastifyInstance } from 'fastify'
import type { Admission } from './admission.js'
import type { Connection } from './connection.js'
import { describe } from './options.js'

export const DRAIN_CLOSE_CODE = 1012
export const DRAIN_CLOSE_REASON = 'Service restart'
export const DEFAULT_DRAIN_MS = 10_000
/** setTimeout's limit: a longer window would fire at once. */
const MAX_DRAIN_MS = 2_147_483_647

/** drain()'s argument, checked: the window in ms. */
export function checkDrainOptions (options: unknown): number {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw new TypeError(`fastify-ws-rooms: drain(options): options must be an object like { overMs: 10000 }, got ${describe(options)}`)
  }
  const given = (options as { overMs?: unknown } | undefined)?.overMs
  const overMs = given === undefined ? DEFAULT_DRAIN_MS : given
  if (typeof overMs !== 'number' || !Number.isFinite(overMs) || overMs < 0 || overMs > MAX_DRAIN_MS) {
    throw new TypeError(`fastify-ws-rooms: drain({ overMs }): overMs must be a number of ms from 0 to ${MAX_DRAIN_MS}, got ${describe(overMs)}`)
  }
  return overMs
}

export class Drain {
  private readonly admission: Admission
  private readonly connections: () => Iterable<Connection>
  /** The drain under way or done: a node drains once (it takes no connection after it). */
  private done: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (admission: Admission, connections: () => Iterable<Connection>) {
    this.admission = admission
    this.connections = connections
  }

  get started (): boolean {
    return this.done !== undefined
  }

  /**
   * Refuse upgrades from now on and close this node's connections over `overMs`: the one at
   * index i of N at i × overMs / N (the first at once). Resolves once every one of them is
   * closed (a client that does not answer its close is cut after closeTimeout). A second call
   * gets the first call's promise: the window already chosen is kept.
   */
  start (overMs: number): Promise<void> {
    if (this.done !== undefined) return this.done
    const startedAt = Date.now()
    this.admission.draining = true
    this.admission.drainEndsAt = startedAt + overMs
    const queue = [...this.connections()].filter((conn) => conn.open)
    const closed = queue.map(closedSocket)
    const count = queue.length
    let next = 0
    const closeDue = (): void => {
      this.timer = undefined
      // Every turn closes all whose time has come: a late timer does not slow the drain down.
      const elapsed = Date.now() - startedAt
      const due = overMs === 0 ? count : Math.min(count, Math.floor(elapsed * count / overMs) + 1)
      while (next < due) queue[next++].close(DRAIN_CLOSE_CODE, DRAIN_CLOSE_REASON)
      if (next < count) this.timer = setTimeout(closeDue, Math.max(1, startedAt + next * overMs / count - Date.now()))
    }
    if (count > 0) closeDue()
    this.done = Promise.all(closed).then(() => {
      // All gone before the window's end: nothing to wait for here any more.
      this.admission.drainEndsAt = Math.min(this.admission.drainEndsAt, Date.now())
    })
    return this.done
  }

  /** Shutdown takes over (1001 for whoever is left): no more 1012s. */
  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }
}

/** Resolves once the connection's socket is closed. */
function closedSocket (conn: Connection): Promise<void> | undefined {
  if (conn.ws.readyState === conn.ws.CLOSED) return undefined
  return new Promise((resolve) => { conn.ws.once('close', () => { resolve() }) })
}

/**
 * While Fastify closes, its router answers every new request with its own 503 before any hook
 * runs: upgrades too, which @fastify/websocket hands to `fastify.routing`. The upgrade's socket
 * is then ended after that answer (the hook that would end it does not run, and server.close()
 * would wait for a client that keeps it open); during a drain (the one `drainOnClose` runs
 * inside close()) the answer gets the Retry-After a drain promises. Only upgrades pass here,
 * and one that succeeds never finishes its HTTP response.
 */
export function answerUpgradesWhileClosing (fastify: FastifyInstance, admission: Admission): void {
  const routing = fastify.routing
  fastify.routing = function routeUpgrade (this: FastifyInstance, req, res) {
    if (admission.draining) res.setHeader('retry-after', String(admission.retryAfterSeconds()))
    // (@fastify/websocket's injectWS passes a request without a socket.)
    res.once('finish', () => { (req.socket as typeof req.socket | undefined)?.destroySoon() })
    routing.call(this, req, res)
  }
}
