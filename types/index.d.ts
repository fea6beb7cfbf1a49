// Public type surface of fastify-ws-rooms (the frames and codes themselves are described in
// docs/protocol.md). The runtime in lib/ imports its types from here, so what users compile
// against is what the plugin is written against.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { ChatMessageIn, ErrorCode, MessageId, RoomUser } from './protocol.js'
import type { ObjectSchema, StaticOf } from './schema.js'
import type { EventPayloadOf, EventTypeOf, MessageDefinitions, RequestMessageOf, RequestResultOf, RequestTypeOf } from './messages.js'

// ---- Wire protocol: frames, error codes, close codes (docs/protocol.md) ----
// Defined in ./protocol.d.ts (which imports nothing, so the client's types share it without
// pulling in fastify), and re-exported here unchanged.
export type * from './protocol.js'
export type * from './schema.js'
export type * from './messages.js'
export { defineMessages } from './messages.js'

// ---- The application's user type ----

/**
 * Declare the user type of your application here once, and `conn.user` in handlers and listeners
 * has that type, and what `authenticate` returns is checked against it (as `@fastify/jwt` does
 * for `request.user`):
 *
 * ```ts
 * declare module 'fastify-ws-rooms' {
 *   interface RoomsUserMap {
 *     user: { id: string, name: string }
 *   }
 * }
 * ```
 *
 * Without a declaration the user is a `RoomUser`: a string `id` and any other fields.
 */
export interface RoomsUserMap {}

/** The user of a connection: the type declared in `RoomsUserMap` (with its string `id`), or `RoomUser`. */
export type AppUser = RoomsUserMap extends { user: infer User }
  ? User extends { id: string } ? User : User & { id: string }
  : RoomUser

// ---- Adapters: what carries rooms, presence, history and user commands between nodes ----

export interface RoomMember {
  connectionId: string
  user: RoomUser
}

/** One join or leave of a room, as it travels between nodes. */
export interface PresenceChange {
  /** true for a join, false for a leave. */
  joined: boolean
  connectionId: string
  user: RoomUser
}

/**
 * What one node tells the others about one room: its joins and leaves since its last diff, in
 * order, and its own member count after them. Each receiving node turns them into `each` events or
 * `batched` presence frames for its own members, by its own mode.
 */
export interface PresenceDiff {
  count: number
  changes: PresenceChange[]
}

/** A message of a history room with its place in the room's stream. `payload` carries `"offset":N`. */
export interface HistoryEntry {
  epoch: string
  offset: number
  payload: string
  /** A connection id that must not receive it (the sender of a chat message). */
  except?: string
}

/** What a history holds for a room: its epoch and last offset, and the kept messages after a given offset. */
export interface HistoryPage {
  epoch: string
  /** The room's last offset (0 when nothing was published in this epoch). */
  offset: number
  /** Kept messages with an offset above the one asked for, oldest first (`except`: as published). */
  messages: Array<{ offset: number, payload: string, except?: string }>
  /** Every message after the offset asked for is still kept: none was trimmed (`size`) or expired (`ttlMs`). */
  complete: boolean
}

/** How much of a room's history to keep (the plugin's `history` option, normalised). */
export interface HistoryLimits {
  size: number
  ttlMs: number
}

/**
 * A history that gives each room one order across every node. Without one on the adapter,
 * the node keeps histories in its own memory (right for one node only).
 */
export interface RoomsHistory {
  /**
   * Give the message `head + sep + '"offset":N}'` the room's next offset N, keep it, and deliver it
   * to every node (this one included) through `AdapterNode.deliverHistory`, in offset order.
   * `head` is the serialized JSON object without its closing brace; `sep` is `','`, or `''` when
   * the object is empty. Rejects when the order cannot be kept (the store is unreachable).
   */
  publish (room: string, head: string, sep: string, except: string | undefined): { epoch: string, offset: number } | Promise<{ epoch: string, offset: number }>
  /** The room's epoch and last offset, and up to `limit` kept messages after `after`. */
  read (room: string, after: number, limit?: number): HistoryPage | Promise<HistoryPage>
}

/** A command for every connection of one user, on every node. */
export type UserCommand =
  | { op: 'disconnect', code: number, reason: string }
  | { op: 'join', room: string }
  | { op: 'leave', room: string }

/**
 * What a node offers its adapter: deliver bytes that arrived from another node to the local
 * members, and count what could not leave this node. Payloads are serialized JSON text,
 * produced once by the publishing node and written as they are.
 */
export interface AdapterNode {
  /** Unique id of this node (process), used to ignore one's own publications. */
  readonly nodeId: string
  /** `traceparent`: the W3C trace context the publishing node sent along, when it traces (the node links its delivery to it). */
  deliverToRoom (room: string, payload: string, except?: string, traceparent?: string): void
  deliverToUser (userId: string, payload: string): void
  deliverToAll (payload: string): void
  /** Local members of a room, for adapters that answer `members()` from memory. */
  localMembers (room: string): RoomMember[]
  /** Every room that has local members (what to resubscribe after a reconnect). */
  localRooms (): string[]
  /** Count messages that could not be sent to other nodes (shown in `stats().dropped`). */
  countDropped (count?: number): void
  readonly log: import('fastify').FastifyBaseLogger
  /** v2: how many members `room` has on this node. */
  localCount (room: string): number
  /** Another node's joins and leaves of a room this node has members in. */
  deliverPresence (room: string, fromNode: string, diff: PresenceDiff): void
  /**
   * The member counts of the other nodes in `room` as the shared store knows them (nodes not
   * listed have none). Pass the `presenceReadMark()` taken when the read was sent: a count from a
   * presence diff heard after it is kept, since the read is older.
   */
  presenceCounts (room: string, counts: ReadonlyMap<string, number>, readMark?: number): void
  /** Taken when a read of the counts is sent, for `presenceCounts`. */
  presenceReadMark (): number
  /** A command for the local connections of `userId`. */
  deliverUserCommand (userId: string, command: UserCommand): void
  /** A message of a history room, in the room's order. */
  deliverHistory (room: string, entry: HistoryEntry): void
  /** Messages may have been missed (the adapter resubscribed): check every history room's position. */
  resyncHistory (): void
  /** The `history` option, normalised; undefined when history is off. */
  readonly historyLimits: HistoryLimits | undefined
  /** Whether `room` keeps history. */
  isHistoryRoom (room: string): boolean
}

/**
 * The one boundary between a node and the others: a small byte bus plus presence.
 * The node delivers to its local members itself; an adapter only carries to other nodes.
 */
export interface RoomsAdapter {
  /** Called once when the plugin starts. */
  init (node: AdapterNode): void | Promise<void>
  /**
   * `traceparent` (W3C Trace Context) is given when the publication happened inside a traced span
   * and the adapter is not the in-memory one: an adapter that can, carries it to the other nodes'
   * `deliverToRoom`; one that cannot ignores it.
   */
  publishToRoom (room: string, payload: string, except?: string, traceparent?: string): void | Promise<void>
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
  /** The room's members on every node; at most `limit` of them when given. */
  members (room: string, limit?: number): RoomMember[] | Promise<RoomMember[]>
  /** Release what the adapter opened. Called from Fastify's onClose. */
  close (): void | Promise<void>
  /**
   * Carry this node's joins and leaves of `room` to the other nodes (`deliverPresence`).
   * Without it, only `each` events cross nodes (as framed `system` events, v1's way).
   */
  publishPresence? (room: string, diff: PresenceDiff): void | Promise<void>
  /** The room's member count across nodes, when the adapter can tell it better than the node's own view. */
  roomSize? (room: string): number | undefined | Promise<number | undefined>
  /**
   * Carry a command to the nodes where `userId` is connected (`deliverUserCommand`).
   * Resolves once it was handed over; rejects when it could not be.
   */
  publishUserCommand? (userId: string, command: UserCommand): void | Promise<void>
  /** One order per history room across nodes. Without it, the node keeps histories in memory. */
  readonly history?: RoomsHistory
}

// ---- Options ----

export type OriginCheck = (origin: string | undefined, request: FastifyRequest) => boolean | Promise<boolean>

export interface RateLimitOptions {
  /** Frames allowed per window; more get `rate_limited`, more than twice this closes with 1008. */
  max: number
  windowMs: number
}

/** The `history` option. */
export interface HistoryOptions {
  /** Messages kept per room. Default 100. */
  size?: number
  /** How long a message is kept, in ms. Default 120000. */
  ttlMs?: number
  /** Which rooms keep history ("history rooms"). Default: every room. */
  rooms?: (room: string) => boolean
}

export type PresenceMode = 'each' | 'batched' | 'none'

/** What a session may do, by room: a key is a room name, a prefix ending in `*` (`'team:42:*'`), or `'*'`. */
export type RoomGrants = Record<string, ReadonlyArray<'join' | 'publish'>>

/**
 * What `authenticate` may return instead of the user: the user, when the session ends, and what it
 * may do. At least one of `expiresAt` and `grants` is given.
 */
export type AuthenticatedSession = {
  user: AppUser
  /** ms since the epoch; the connection is closed with 4001 "Token expired" then (unless refreshed). */
  expiresAt: number
  /** Rooms a client may join and publish to; without grants, `authorizeJoin` and `authorizePublish` alone decide. */
  grants?: RoomGrants
} | {
  user: AppUser
  expiresAt?: number
  grants: RoomGrants
}

export interface WsRoomsOptions {
  /** The WebSocket route. Default `'/ws'`. */
  path?: string
  /** Origin check before the upgrade. Default: same-origin (a missing Origin is allowed). */
  allowedOrigins?: string[] | '*' | OriginCheck
  /** With an `allowedOrigins` list: accept requests without an Origin header. Default `false`. */
  allowMissingOrigin?: boolean
  /**
   * Verify a token before the upgrade. Default: none, every connection is anonymous. Returns the
   * user, or `{ user, expiresAt }` to end the connection (4001) when the token expires.
   */
  authenticate?: (token: string, request: FastifyRequest) =>
    AppUser | AuthenticatedSession | null | undefined | Promise<AppUser | AuthenticatedSession | null | undefined>
  /** Per-room permission, checked at every join. Default: allow. */
  authorizeJoin?: (user: AppUser, room: string, request: FastifyRequest) => boolean | Promise<boolean>
  /**
   * Asked for every client `message` frame, before anything is delivered: `false` refuses it with
   * `forbidden`, a throw with `internal_error`. Runs after the grants check. Default: allow.
   */
  authorizePublish?: (user: AppUser, room: string, frame: ChatMessageIn) => boolean | Promise<boolean>
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
   * Default: only when `authorizeJoin` is set, which receives it. Without it, a connection with
   * `authenticate` keeps the upgrade's headers, ip and url for the `authenticate` call of a refresh.
   */
  retainRequest?: boolean
  /** How long a client gets to answer a close frame before its socket is cut (on `fastify.close()` too). Default 2000. */
  closeTimeout?: number
  /**
   * When set, `fastify.close()` first drains the node over this many ms, as
   * `fastify.rooms.drain({ overMs })` does (upgrades refused with 503 + `Retry-After`,
   * connections closed with 1012 "Service restart" one after the other), then closes what is
   * left with 1001. Default 0: no drain, every client gets 1001 at once.
   */
  drainOnClose?: number
  /**
   * Write coalescing under load (ms, 0–100; 0 turns it off). Frames go out once per event-loop
   * turn, one write per socket. When the last of those flushes itself took at least this long
   * and new frames come less than this long after it ended, the server is busy writing: the next
   * flush waits this long instead of one turn, so more frames share each write system call. An
   * idle server, and the first frames after a pause, are not delayed. Default 2.
   */
  writeDelay?: number
  /** Keep the last messages of each room (or of the rooms `rooms` picks) for recovery. Default `false`. */
  history?: false | HistoryOptions
  /** How members hear of joins and leaves. Default `'auto'`. */
  presenceEvents?: 'auto' | PresenceMode | ((room: string) => PresenceMode)
  /** With `'auto'`, `each` while the room has at most this many members, else `batched`. Default 100. */
  presenceEachMax?: number
  /** In `batched` mode: at most one presence frame per room per this many ms. Default 250. */
  presenceInterval?: number
  /** At most this many members in the answer to a `members` request. Default 1000. */
  membersLimit?: number
  /**
   * Prometheus metrics through prom-client (an optional peer dependency): `true` registers them in
   * prom-client's default registry. Default `false`.
   */
  metrics?: boolean | MetricsOptions
}

/** The part of a prom-client `Registry` the plugin uses (any prom-client 15 `Registry` fits). */
export interface MetricsRegistry {
  registerMetric (metric: any): void
  getSingleMetric (name: string): any
  removeSingleMetric (name: string): void
}

/** The `metrics` option. */
export interface MetricsOptions {
  /** Where the series are registered. Default: prom-client's default registry. */
  registry?: MetricsRegistry
  /** Put before every series name. Default `'ws_rooms_'`. */
  prefix?: string
  /**
   * Adds a `room` label to the series that concern a room, filled with what this returns for the
   * room's name: return a small set of values (a room's kind, not its name), or Prometheus will
   * drown in series.
   */
  roomLabel?: (room: string) => string
}

// ---- fastify.rooms ----

/** A connected client, as handlers and event listeners see it. */
export interface RoomConnection {
  readonly id: string
  /** Who `authenticate` said this is (the type declared in `RoomsUserMap`), or `{ id: 'anon-…' }` without `authenticate`; a refresh may replace it (never its id). */
  readonly user: AppUser
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
export type HandledMessage<S extends ObjectSchema> = StaticOf<S> & { type: string, id?: MessageId }

export type RoomsEventName = 'connect' | 'disconnect' | 'join' | 'leave'

/** `fastify.rooms.history()`: the room's epoch and last offset, and the kept messages after `after`. */
export interface RoomHistory {
  epoch: string
  offset: number
  /** The kept messages (each with its `offset`), oldest first. */
  messages: Array<Record<string, unknown> & { offset: number }>
}

export interface DisconnectOptions {
  /** 4000–4999. Default 4000. */
  code?: number
  /** Default "Disconnected by the server". */
  reason?: string
}

export interface DrainOptions {
  /**
   * The window, in ms, over which this node's connections are closed (1012 "Service restart"),
   * evenly spaced: the first at once. Default 10000.
   */
  overMs?: number
}

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

/** One handler per request type of a definition, returning (or resolving to) the ack's `result`. */
export type MessageHandlers<M> = {
  [K in RequestTypeOf<M>]: (conn: RoomConnection, message: RequestMessageOf<M, K>) => RequestResultOf<M, K> | Promise<RequestResultOf<M, K>>
}

/** What `rooms.implement` returns: senders of the definition's events, their payloads typed. */
export interface ImplementedApi<M> {
  /** `{"type":type, ...payload}` to every member of `room`, as `rooms.broadcast` sends. */
  broadcast<K extends EventTypeOf<M>> (room: string, type: K, payload: EventPayloadOf<M, K>, options?: BroadcastOptions): Promise<void>
  /** `{"type":type, ...payload}` to every connection of `userId`, as `rooms.sendToUser` sends. */
  sendToUser<K extends EventTypeOf<M>> (userId: string, type: K, payload: EventPayloadOf<M, K>): Promise<void>
  /** `{"type":type, ...payload}` to every connection, as `rooms.broadcastAll` sends. */
  broadcastAll<K extends EventTypeOf<M>> (type: K, payload: EventPayloadOf<M, K>): Promise<void>
}

export interface RoomsApi {
  /** This node's id (a prefix of every connection id it hands out; how adapters tell nodes apart). */
  readonly nodeId: string
  /** Send `message` to every member of `room` on every node. Serialized once. */
  broadcast (room: string, message: unknown, options?: BroadcastOptions): Promise<void>
  broadcastAll (message: unknown): Promise<void>
  /** Send `message` to every connection of `userId`, on every node. */
  sendToUser (userId: string, message: unknown): Promise<void>
  /**
   * Join a connection of this node to a room, with the same events and checks as a client join
   * (but no `authorizeJoin`). The connection itself is sent `added` (in a history room with the
   * position to recover from), unless it was in the room already.
   */
  join (connectionId: string, room: string): Promise<void>
  /** Take a connection of this node out of a room: the others get `leave`, the connection itself `removed`. */
  leave (connectionId: string, room: string): Promise<void>
  /** Members of `room`: cluster-wide with an adapter that has presence; at most `limit` (default: all). */
  members (room: string, options?: { limit?: number }): Promise<RoomMember[]>
  /** What the history keeps of `room`. Rejects for a room without history. */
  history (room: string, options?: { after?: number, limit?: number }): Promise<RoomHistory>
  /** Close every connection of `userId` on every node. */
  disconnectUser (userId: string, options?: DisconnectOptions): Promise<void>
  /** Join every connection of `userId`, on every node, to `room` (no `authorizeJoin`), as `join` does: each connection gets `added`. */
  joinUser (userId: string, room: string): Promise<void>
  /** Take every connection of `userId`, on every node, out of `room`, as `leave` does: each connection gets `removed`. */
  leaveUser (userId: string, room: string): Promise<void>
  /**
   * Stop this node taking connections and send its clients elsewhere before a restart: from the
   * call on, upgrades get HTTP 503 with a `Retry-After` header, and the node's connections are
   * closed with 1012 "Service restart", spread evenly over `overMs`. Resolves once all of them
   * are closed; `fastify.close()` after it (or during it) closes what is left with 1001. A call
   * while a drain is under way or done gets that drain's promise (its window is kept); the node
   * takes no new connection again, so start a new process to serve again. Rejects with a
   * TypeError for an `overMs` that is not a number of ms from 0 to 2147483647.
   */
  drain (options?: DrainOptions): Promise<void>
  /** Rooms with members on this node. */
  rooms (): Array<{ room: string, size: number }>
  stats (): RoomsStats
  /** A connection of this node by id. */
  connection (connectionId: string): RoomConnection | undefined
  /**
   * Add an application message type, validated by a TypeBox object schema (`Type.Object(...)`)
   * from `@sinclair/typebox` 0.34 or `typebox` 1.x, compiled once: here, or for the first typebox
   * 1.x schema (whose compiler is then imported) before the server is ready, which fails if the
   * schema cannot be compiled. A frame of this type that the schema refuses gets
   * `invalid_message` ("Invalid message format: <field> <first schema error>").
   * (A CommonJS program also gets an overload taking a schema of the CommonJS build of
   * `@sinclair/typebox`: index.d.cts.)
   */
  handle<S extends ObjectSchema> (
    type: string,
    schema: S,
    handler: (conn: RoomConnection, message: HandledMessage<S>) => unknown
  ): void
  /**
   * Register every request type of a `defineMessages` definition as `handle` does, with one handler
   * each; what a handler returns is checked against the request's `result` before the ack (a value
   * that fails it: the client gets `internal_error`, the server logs the type and the first error).
   * Throws a TypeError naming a request type without a handler.
   */
  implement<M extends MessageDefinitions> (messages: M, handlers: MessageHandlers<M>): ImplementedApi<M>
  /**
   * An AsyncAPI 3.0.0 document (a plain object) of the endpoint at `path`: the protocol's frames and
   * every type registered with `handle` or `implement`, payloads and results as JSON Schema.
   */
  asyncapi (info?: { title?: string, version?: string }): Record<string, unknown>
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
