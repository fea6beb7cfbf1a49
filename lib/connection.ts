// The per-connection context: who it is, which rooms it is in, its rate-limit window, and how
// bytes reach it. Kept small: a few fields and references, no per-connection timers.
import type { Socket } from 'node:net'
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import type { RoomConnection, RoomUser } from '../types/index.js'
import { type CoalescedWriter, frameText, holdUntilNextTick, writeCoalesced } from './frame-writer.js'
import type { RateLimitState, RateVerdict } from './rate-limiter.js'

/** A frame waiting its turn, with the rate limiter's verdict from when it arrived. */
export interface WaitingFrame {
  text: string
  verdict: RateVerdict
}

/** What every connection shares with its node: limits, counters, and what to do with a slow receiver. */
export interface ConnectionHost {
  readonly maxBufferedBytes: number
  messagesOut: number
  slowConsumer (conn: Connection): void
  /** The server sent a close frame: the socket is watched until it is gone (cut after closeTimeout). */
  closeStarted (conn: Connection): void
}

export class Connection implements RoomConnection, RateLimitState, CoalescedWriter {
  readonly id: string
  readonly user: RoomUser
  /** The user serialized once, spliced into every frame that names them. */
  readonly userJson: string
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
  readonly expiresAt: number | undefined
  /** Place in the node's session-expiry heap; -1 when not in it. */
  expiryIndex = -1
  /** When the server started closing it (see ClosingSockets); 0 while open. */
  closeStartedAt = 0
  /** Has the client sent a data frame yet (first-frame timeout). */
  spoke = false
  /** False from the moment the server starts closing it: nothing more is written. */
  open = true
  /** Frames that arrived while an earlier frame's async work ran; null when idle. */
  backlog: WaitingFrame[] | null = null
  /** Size of the frames in `backlog`, bounded by maxBacklogBytes. */
  backlogBytes = 0
  /** Part of this tick's flush (see frame-writer). */
  flushPending = false
  /** A rate-limit close waits in the backlog behind earlier frames: read nothing more. */
  closeQueued = false
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
  }

  /** Write an already-framed broadcast (`frame` is `payload` framed once for every receiver). */
  deliver (frame: Buffer, payload: string): void {
    if (!this.open) return
    const host = this.host
    host.messagesOut++
    const socket = this.socket
    if (socket !== null) {
      writeCoalesced(this as this & { socket: Socket }, frame)
    } else {
      this.ws.send(payload)
      holdUntilNextTick(this)
    }
  }

  /** Called once per tick after this socket's coalesced writes were handed to the kernel. */
  flushed (): void {
    // With compression, ws.bufferedAmount also counts messages still queued for deflate.
    const unsent = this.socket !== null ? this.socket.writableLength : this.ws.bufferedAmount
    if (this.open && unsent > this.host.maxBufferedBytes) this.host.slowConsumer(this)
  }

  /** Send one serialized JSON message to this connection. */
  sendPayload (payload: string): void {
    if (this.open) this.deliver(this.socket === null ? EMPTY : frameText(payload), payload)
  }

  send (message: unknown): void {
    this.sendPayload(JSON.stringify(message))
  }

  /** Forget the frames waiting their turn (none will be handled once the connection is closing). */
  dropBacklog (): void {
    this.backlog = null
    this.backlogBytes = 0
  }

  close (code = 1000, reason = ''): void {
    if (!this.open) return
    this.open = false
    this.dropBacklog()
    this.host.closeStarted(this)
    this.ws.close(code, reason)
  }

  /** Drop the connection without a closing handshake (idle peers, shutdown stragglers). */
  terminate (): void {
    this.open = false
    this.dropBacklog()
    this.ws.terminate()
  }
}

const EMPTY = Buffer.alloc(0)
