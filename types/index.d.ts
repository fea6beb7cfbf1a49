// Public type surface of fastify-ws-rooms (CONTRACT §1–§8). The runtime in lib/ imports
// its types from here, so what users compile against is what the plugin is written against.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { Static, TObject } from '@sinclair/typebox'
import type { ErrorCode, MessageId, RoomUser } from './protocol.js'

// ---- Wire protocol (CONTRACT §4, §5, §8) ----
// Defined in ./protocol.d.ts (which imports nothing, so the client's types share it without
// pulling in fastify), and re-exported here unchanged.
export type * from './protocol.js'

// ---- Adapters (CONTRACT §7) ----

export interface RoomMember {
  connectionId: string
  user: RoomUser
}

/**
 * What a node offers its adapter: deliver bytes that arrived from another node to the local
 * members, and count what could not leave this node. Payloads are serialized JSON text,
 * produced once by the publishing node and written as they are.
 */
export interface AdapterNode {
  /** Unique id of this node (process), used to ignore one's own publications. */
  readonly nodeId: string
  deliverToRoom (room: string, payload: string, except?: string): void
  deliverToUser (userId: string, payload: string): void
  deliverToAll (payload: string): void
  /** Local members of a room, for adapters that answer `members()` from memory. */
  localMembers (room: string): RoomMember[]
  /** Every room that has local members (what to resubscribe after a reconnect). */
  localRooms (): string[]
  /** Count messages that could not be sent to other nodes (shown in `stats().dropped`). */
  countDropped (count?: number): void
  readonly log: import('fastify').FastifyBaseLogger
}

/**
 * The one boundary between a node and the others: a small byte bus plus presence.
 * The broker delivers to local members itself; an adapter only carries to other nodes.
 */
export interface RoomsAdapter {
  /** Called once when the plugin starts. */
  init (node: AdapterNode): void | Promise<void>
  publishToRoom (room: string, payload: string, except?: string): void | Promise<void>
  publishToUser (userId: string, payload: string): void | Promise<void>
  publishToAll (payload: string): void | Promise<void>
  /** The first local member joined `room`: start receiving it. Resolves once subscribed. */
  subscribeRoom (room: string): void | Promise<void>
  /** The last local member left `room`. */
  unsubscribeRoom (room: string): void | Promise<void>
  /** A user is connected here: start receiving `sendToUser` for them. */
  subscribeUser (userId: string): void | Promise<void>
  unsubscribeUser (userId: string): void | Promise<void>
  addPresence (room: string, member: RoomMember): void | Promise<void>
  removePresence (room: string, connectionId: string): void | Promise<void>
  members (room: string): RoomMember[] | Promise<RoomMember[]>
  /** Release what the adapter opened. Called from Fastify's onClose. */
  close (): void | Promise<void>
}

// ---- Options (CONTRACT §2) ----

export type OriginCheck = (origin: string | undefined, request: FastifyRequest) => boolean | Promise<boolean>

export interface RateLimitOptions {
  /** Frames allowed per window; more get `rate_limited`, more than twice this closes with 1008. */
  max: number
  windowMs: number
}

export interface WsRoomsOptions {
  /** The WebSocket route. Default `'/ws'`. */
  path?: string
  /** Origin check before the upgrade. Default: same-origin (a missing Origin is allowed). */
  allowedOrigins?: string[] | '*' | OriginCheck
  /** With an `allowedOrigins` list: accept requests without an Origin header. Default `false`. */
  allowMissingOrigin?: boolean
  /** Verify a token before the upgrade. Default: none, every connection is anonymous. */
  authenticate?: (token: string, request: FastifyRequest) => RoomUser | null | undefined | Promise<RoomUser | null | undefined>
  /** Per-room permission, checked at every join. Default: allow. */
  authorizeJoin?: (user: RoomUser, room: string, request: FastifyRequest) => boolean | Promise<boolean>
  /** Largest accepted frame in bytes; larger closes with 1009. Default 65536. */
  maxPayload?: number
  /**
   * Frames of one connection are handled in order; while one waits on async work (a slow
   * `authorizeJoin`, an async handler), later ones wait behind it. Their total size is bounded by
   * this many bytes (and their number by 1024): past it the connection is closed with 1008.
   * Default `16 × maxPayload`.
   */
  maxBacklogBytes?: number
  /** Per-connection frame rate limit, or `false`. Default `{ max: 100, windowMs: 10000 }`. */
  rateLimit?: RateLimitOptions | false
  /** Milliseconds of silence (no frame, no pong) before a connection is terminated. Default 60000. */
  idleTimeout?: number
  /** Default 100. */
  maxRoomsPerConnection?: number
  /** Default 128 (UTF-16 code units). */
  maxRoomNameLength?: number
  /** Unsent bytes a receiver may have queued before it is closed with 1013. Default 1048576. */
  maxBufferedBytes?: number
  /** How rooms reach other nodes. Default: in-memory (one node). */
  adapter?: RoomsAdapter
  /** Concurrent connections allowed from one IP address; more get HTTP 429. Default 100. `0` disables. */
  maxConnectionsPerIp?: number
  /** Concurrent connections allowed in total; more get HTTP 503. Default 10000. `0` disables. */
  maxConnections?: number
  /** `authenticate` calls allowed in flight at once; more get HTTP 503. Default 1000. `0` disables. */
  maxPendingAuthentications?: number
  /**
   * How long one `authenticate` call may take, in ms: a call that has not settled by then refuses
   * the upgrade with HTTP 503 and frees its `maxPendingAuthentications` slot; its late result is
   * ignored. Default 10000. `0` disables.
   */
  authenticateTimeout?: number
  /** A connection that has not sent its first frame within this many ms is closed with 1008. Default 30000. `0` disables. */
  firstFrameTimeout?: number
  /**
   * Keep each connection's upgrade request as `conn.request` (about 6 KB per connection).
   * Default: only when `authorizeJoin` is set, which receives it.
   */
  retainRequest?: boolean
  /** How long `fastify.close()` waits for clients to answer the 1001 close before cutting them. Default 2000. */
  closeTimeout?: number
}

// ---- fastify.rooms (CONTRACT §6) ----

/** A connected client, as handlers and event listeners see it. */
export interface RoomConnection {
  readonly id: string
  readonly user: RoomUser
  /** Rooms this connection is in on this node. */
  readonly rooms: ReadonlySet<string>
  /** The client's address (`request.ip` at the upgrade: honours Fastify's `trustProxy`). */
  readonly ip: string
  /**
   * The upgrade request, kept only with `retainRequest: true` or an `authorizeJoin` (which is
   * given it): it costs about 6 KB per connection. Put what handlers need into the user that
   * `authenticate` returns instead.
   */
  readonly request: FastifyRequest | undefined
  /** Send one JSON message to this connection only. */
  send (message: unknown): void
  close (code?: number, reason?: string): void
}

/** A frame of an application type registered with `rooms.handle`: the schema's fields plus `type` and `id`. */
export type HandledMessage<S extends TObject> = Static<S> & { type: string, id?: MessageId }

export type RoomsEventName = 'connect' | 'disconnect' | 'join' | 'leave'

export interface RoomsEvents {
  connect: (conn: RoomConnection) => void
  disconnect: (conn: RoomConnection, code: number) => void
  join: (conn: RoomConnection, room: string) => void
  leave: (conn: RoomConnection, room: string) => void
}

export interface RoomsStats {
  connections: number
  rooms: number
  messagesIn: number
  messagesOut: number
  rateLimited: number
  rejectedUpgrades: number
  slowConsumersClosed: number
  dropped: number
}

export interface BroadcastOptions {
  /** A connection id that should not receive the message (typically the sender). */
  except?: string
}

export interface RoomsApi {
  /** This node's id (a prefix of every connection id it hands out; how adapters tell nodes apart). */
  readonly nodeId: string
  /** Send `message` to every member of `room` on every node. Serialized once. */
  broadcast (room: string, message: unknown, options?: BroadcastOptions): Promise<void>
  broadcastAll (message: unknown): Promise<void>
  /** Send `message` to every connection of `userId`, on every node. */
  sendToUser (userId: string, message: unknown): Promise<void>
  /** Join a connection of this node to a room, with the same events and checks as a client join. */
  join (connectionId: string, room: string): Promise<void>
  leave (connectionId: string, room: string): Promise<void>
  /** Members of `room`: cluster-wide with an adapter that has presence. */
  members (room: string): Promise<RoomMember[]>
  /** Rooms with members on this node. */
  rooms (): Array<{ room: string, size: number }>
  stats (): RoomsStats
  /** A connection of this node by id. */
  connection (connectionId: string): RoomConnection | undefined
  /**
   * Add an application message type, validated by a TypeBox object schema (`Type.Object(...)`).
   * (A CommonJS program also gets an overload taking a schema of TypeBox's CommonJS build: index.d.cts.)
   */
  handle<S extends TObject> (
    type: string,
    schema: S,
    handler: (conn: RoomConnection, message: HandledMessage<S>) => unknown
  ): void
  on<E extends RoomsEventName> (event: E, listener: RoomsEvents[E]): this
  off<E extends RoomsEventName> (event: E, listener: RoomsEvents[E]): this
}

declare module 'fastify' {
  interface FastifyInstance {
    rooms: RoomsApi
  }
}

export declare const fastifyWsRooms: FastifyPluginAsync<WsRoomsOptions>
export default fastifyWsRooms

/**
 * Throw from a `rooms.handle` handler to refuse the frame with one of the contract's error codes
 * (the client gets `{ type: 'error', code, text, id }`) instead of `internal_error`.
 */
export declare class RoomsError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string)
}

/** The in-memory adapter (the default): one node, presence answered from memory. */
export declare function memoryAdapter (): RoomsAdapter
