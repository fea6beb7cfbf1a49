// The per-connection context: who it is, which rooms it is in, its rate-limit window, and how
// bytes reach it. Kept small: a few fields and references, no per-connection timers.
import type { Socket } from 'node:net'
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import type { RoomConnection, RoomUser } from '../types/index.js'
import { flushNow, frameText, holdUntilNextTick, queueBatched, queueFrame, type TickBatch, type TickWriter } from './frame-writer.js'
import type { RefreshRequest } from './authenticate.js'
import type { Grants } from './grants.js'
import type { RateLimitState, RateVerdict } from './rate-limiter.js'
import { serialize } from './serialize.js'
import type { Counters } from './stats.js'

/** A frame waiting its turn, with the rate limiter's verdict from when it arrived. */
export interface WaitingFrame {
  text: string
  verdict: RateVerdict
}

/** What every connection shares with its node: limits, counters, and what to do with a slow receiver. */
export interface ConnectionHost {
  readonly maxBufferedBytes: number
  readonly counters: Counters
  slowConsumer (conn: Connection): void
  /** The server sent a close frame: the socket is watched until it is gone (cut after closeTimeout). */
  closeStarted (conn: Connection): void
}

export class Connection implements RoomConnection, RateLimitState, TickWriter {
  readonly id: string
  /** Replaced (same id) by a session refresh, as are userJson, grants and expiresAt. */
  user: RoomUser
  /** The user serialized once, spliced into every frame that names them. */
  userJson: string
  /** What the session may join and publish to (grants.ts); null without grants: no check. */
  grants: Grants | null = null
  /** What `authenticate` is given again on a refresh: the upgrade's headers, ip and url (see refresh.ts); undefined without `authenticate`. */
  authRequest: RefreshRequest | undefined = undefined
  readonly rooms = new Set<string>()
  /** Rooms whose join is under way (in `rooms`, not announced yet); null when none. */
  joining: Set<string> | null = null
  readonly ip: string
  readonly request: FastifyRequest | undefined
  readonly ws: WebSocket
  windowStart = 0
  framesInWindow = 0
  lastSeen: number
  readonly connectedAt: number
  /** When the session ends (ms since the epoch, §11); undefined when `authenticate` gave no expiry. */
  expiresAt: number | undefined
  /** Place in the node's session-expiry heap; -1 when not in it. */
  expiryIndex = -1
  /** When the server started closing it (see ClosingSockets); 0 while open. */
  closeStartedAt = 0
  /** The first close code given to the socket (ours, ws's own like 1009, or the echo of the client's); 0 before. */
  closeCode = 0
  /** Has the client sent a data frame yet (first-frame timeout). */
  spoke = false
  /** False from the moment the server starts closing it: nothing more is written. */
  open = true
  /** Frames that arrived while an earlier frame's async work ran; null when idle. */
  backlog: WaitingFrame[] | null = null
  /** Size of the frames in `backlog`, bounded by maxBacklogBytes. */
  backlogBytes = 0
  /** This tick's output, written at the tick's end (see frame-writer); null when none. */
  pending: TickWriter['pending'] = null
  /** A rate-limit close waits in the backlog behind earlier frames: read nothing more. */
  closeQueued = false
  /** Bytes of the frames queued for this tick's write (not handed to the socket yet). */
  private queuedBytes = 0
  /** Work waiting for the socket to take what is unsent (see whenUnsentAtMost); null when none. */
  private drainWaiters: DrainWaiter[] | null = null
  /** A 'drain' listener or a re-check timer is set for `drainWaiters`. */
  private drainWatched = false
  private readonly host: ConnectionHost
  /** The raw TCP socket, or null when permessage-deflate is on and frames must go through `ws`. */
  readonly socket: Socket | null

  constructor (id: string, user: RoomUser, ws: WebSocket, ip: string, request: FastifyRequest | undefined, host: ConnectionHost, now: number, expiresAt?: number) {
    this.id = id
    this.expiresAt = expiresAt
    this.user = user
    this.userJson = JSON.stringify(user)
    this.ws = ws
    this.ip = ip
    this.request = request
    this.host = host
    this.lastSeen = now
    this.connectedAt = now
    // With compression each receiver needs its own deflate; only then do frames go through ws.send.
    this.socket = ws.extensions.includes('permessage-deflate') ? null : (ws as unknown as { _socket: Socket })._socket
    // ws writes its close frames itself (ours, the echo of the client's, 1009 and the like from
    // its receiver): what this tick queued before must go out ahead of them, and the code is kept
    // (the metrics count closes by the code that closed first).
    ;(ws as ConnectionSocket)[kConnection] = this
    ws.close = closeAfterQueuedFrames
  }

  /** Queue frame `index` of this tick's batch of a room (`payload` framed once for every receiver). */
  deliverBatched (batch: TickBatch, index: number, payload: string): void {
    if (!this.open) return
    this.host.counters.messagesOut++
    if (this.socket !== null) {
      this.queuedBytes += batch.frames[index].length
      queueBatched(this, batch, index)
    } else {
      this.sendCompressed(payload)
    }
  }

  /** Queue an already-framed message (`frame` is `payload` framed; it may be shared with other receivers). */
  deliver (frame: Buffer, payload: string): void {
    if (!this.open) return
    this.host.counters.messagesOut++
    if (this.socket !== null) {
      this.queuedBytes += frame.length
      queueFrame(this, frame)
    } else {
      this.sendCompressed(payload)
    }
  }

  /** permessage-deflate: ws deflates per receiver; the end-of-tick look still happens. */
  private sendCompressed (payload: string): void {
    this.ws.send(payload)
    holdUntilNextTick(this)
  }

  get writable (): boolean {
    return this.ws.readyState === OPEN
  }

  /**
   * Bytes written for this receiver that it has not taken yet: those the socket still holds and
   * those queued for this tick's write. With compression, ws.bufferedAmount, which also counts
   * messages still queued for deflate.
   */
  get unsent (): number {
    return this.socket !== null ? this.socket.writableLength + this.queuedBytes : this.ws.bufferedAmount
  }

  /** Called once per tick after this socket's output of the tick was handed to the kernel. */
  flushed (): void {
    this.queuedBytes = 0
    if (this.open && this.unsent > this.host.maxBufferedBytes) {
      this.host.slowConsumer(this)
      return
    }
    if (this.drainWaiters !== null) this.wakeDrainWaiters()
  }

  /**
   * Resolves once what was queued so far went out and the socket holds at most `limit` unsent
   * bytes, or once the connection is closing: how work that would otherwise queue without bound
   * (a history catch-up) goes at the pace the receiver reads.
   */
  whenUnsentAtMost (limit: number): Promise<void> {
    return new Promise((resolve) => {
      if (!this.open) {
        resolve()
        return
      }
      ;(this.drainWaiters ??= []).push({ limit, resolve })
      // Nothing queued: no write of this tick will call flushed(), so look now.
      if (this.pending === null) this.wakeDrainWaiters()
    })
  }

  private wakeDrainWaiters (): void {
    const waiters = this.drainWaiters
    if (waiters === null) return
    const unsent = this.unsent
    let kept = 0
    for (const waiter of waiters) {
      if (!this.open || unsent <= waiter.limit) waiter.resolve()
      else waiters[kept++] = waiter
    }
    waiters.length = kept
    if (kept === 0) {
      this.drainWaiters = null
      return
    }
    if (this.drainWatched) return
    this.drainWatched = true
    const socket = this.socket ?? (this.ws as unknown as { _socket: Socket })._socket
    const again = (): void => {
      this.drainWatched = false
      this.wakeDrainWaiters()
    }
    // 'drain' comes once the socket emptied after a write it could not take at once; with
    // compression the bytes may still wait for deflate, not in the socket: look again shortly.
    if (socket.writableNeedDrain) socket.once('drain', again)
    else setTimeout(again, DRAIN_RECHECK_MS).unref()
  }

  /** Its output was written ahead of the tick's end (before a close frame). */
  flushedAhead (): void {
    this.queuedBytes = 0
  }

  /** Send one serialized JSON message to this connection. */
  sendPayload (payload: string): void {
    if (this.open) this.deliver(this.socket === null ? EMPTY : frameText(payload), payload)
  }

  send (message: unknown): void {
    this.sendPayload(serialize(message))
  }

  /** Forget the frames waiting their turn (none will be handled once the connection is closing). */
  dropBacklog (): void {
    this.backlog = null
    this.backlogBytes = 0
  }

  /** Nothing more is written or handled: drop what waits, and let work waiting on the socket end. */
  stop (): void {
    this.open = false
    this.dropBacklog()
    this.wakeDrainWaiters()
  }

  close (code = 1000, reason = ''): void {
    if (!this.open) return
    this.stop()
    this.host.closeStarted(this)
    this.ws.close(code, reason)
  }

  /** Drop the connection without a closing handshake (idle peers, shutdown stragglers). */
  terminate (): void {
    this.stop()
    this.ws.terminate()
  }
}

interface DrainWaiter {
  limit: number
  resolve: () => void
}

/** With compression, how often a wait for unsent bytes looks again when no 'drain' will come. */
const DRAIN_RECHECK_MS = 10

const EMPTY = Buffer.alloc(0)
const OPEN = 1

/** The connection of a socket, for listeners shared by every socket (no closures per connection). */
export const kConnection = Symbol('fastify-ws-rooms.connection')
type ConnectionSocket = WebSocket & { [kConnection]?: Connection }

/** ws.close: the first code is kept; on sockets whose frames go out at the tick's end, those queued go first. */
function closeAfterQueuedFrames (this: ConnectionSocket, code?: number, data?: string | Buffer): void {
  const conn = this[kConnection]
  if (conn !== undefined && conn.closeCode === 0 && typeof code === 'number') conn.closeCode = code
  if (conn !== undefined && conn.socket !== null) {
    flushNow(conn)
    conn.flushedAhead()
  }
  ;(Object.getPrototypeOf(this) as WebSocket).close.call(this, code, data)
}
