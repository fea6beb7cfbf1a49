// Public type surface of `fastify-ws-rooms/client`: a typed WebSocket client for the rooms
// protocol (docs/protocol.md). No DOM or Node types are referenced here, so it compiles in a
// browser project, a Node project using `ws`, or both; the wire types come from ./protocol.d.ts,
// so nothing of fastify is pulled in. lib/client imports its types from here.
import type {
  ChatEvent,
  ErrorCode,
  ErrorMessage,
  MembersAckData,
  RoomUser,
  ServerMessage,
  SystemEvent
} from './protocol.js'
import type { ObjectSchema, StaticOf } from './schema.js'
import type { AppOf, MessageDefinitions } from './messages.js'

export type * from './protocol.js'
export type { ObjectSchema, StaticOf, TObject034, TObjectNext } from './schema.js'
export type * from './messages.js'
export { defineMessages } from './messages.js'

// ---- The socket the client drives (browser WebSocket, `ws`, undici, ...) ----

/** The part of a WebSocket the client uses: the WHATWG interface that browsers and `ws` share. */
export interface WebSocketLike {
  readonly readyState: number
  readonly protocol: string
  send (data: string): void
  close (code?: number, reason?: string): void
  addEventListener (type: 'open' | 'message' | 'close' | 'error', listener: (event: any) => void): void
  removeEventListener (type: 'open' | 'message' | 'close' | 'error', listener: (event: any) => void): void
}

export interface WebSocketConstructorLike {
  new (url: string, protocols?: string | string[]): WebSocketLike
}

// ---- Options ----

export interface ReconnectOptions {
  /** Delay before the first retry, in ms. Default 500. */
  initialDelayMs?: number
  /** Upper bound of a retry delay, in ms. Default 30000. */
  maxDelayMs?: number
  /** Each retry waits `factor` times longer than the previous one. Default 2. */
  factor?: number
  /** Fraction (0..1) of each delay that is randomized away: the wait is `delay × (1 − jitter × random())`. Default 0.5. */
  jitter?: number
  /** Consecutive failed attempts before giving up (`Infinity` never gives up). Default `Infinity`. */
  maxAttempts?: number
  /**
   * Consecutive attempts that closed before opening without a visible cause, before giving up.
   * Browsers hide the HTTP status of a refused upgrade (401/403 look like a dropped connection),
   * so this bound is what stops a browser with a refused token from retrying forever. Default 10
   * (about 2.5 minutes with the default delays). Refusals with a visible status (`ws` in Node)
   * and network errors (ECONNREFUSED, ...) do not count here.
   */
  maxHandshakeFailures?: number
}

export interface ConnectOptions {
  /**
   * Token checked by the server's `authenticate`. A function is called before every connection
   * attempt, so a reconnect can use a fresh token.
   */
  token?: string | (() => string | Promise<string>)
  /**
   * How the token travels. `'protocol'` (default): the `bearer.<token>` subprotocol offered beside
   * `rooms.v1`, which keeps it out of URLs and logs; the token must then be made of HTTP token
   * characters (JWTs are). `'query'`: `?token=` in the URL.
   */
  tokenTransport?: 'protocol' | 'query'
  /** More subprotocols to offer, after `rooms.v1` (and the bearer protocol). */
  protocols?: string[]
  /** The WebSocket implementation, e.g. `ws` in Node 20. Default: the global `WebSocket`. */
  WebSocket?: WebSocketConstructorLike
  /** Reconnect policy, or `false` to never reconnect. */
  reconnect?: ReconnectOptions | false
  /**
   * After the server closed the connection with 1001 (going away), 1012 (service restart) or 1013
   * (try again later), the first reconnect waits a random delay from 0 to this many ms, evenly
   * spread, instead of the backoff's first delay: the clients of a node that stops do not all
   * arrive at the other nodes in the same second. Later attempts back off as usual. Default 5000.
   */
  restartJitterMs?: number
  /** How long `join`/`leave`/`send`/`request` wait for their ack or error, in ms; `0`: no limit. Default 10000. */
  requestTimeoutMs?: number
  /**
   * How long one connection attempt may take, from `new WebSocket` to the server's welcome frame,
   * before it is abandoned and counted as a failed attempt, in ms. Default 10000.
   */
  connectTimeoutMs?: number
  /**
   * Frames called for while the client is not connected wait in a queue and are sent once, in
   * order, after the next connection opened and rejoined its rooms; so do calls naming a room
   * whose rejoin is still being retried (`OpenInfo.pending`), until it is rejoined. This bounds
   * that queue; a call beyond it is rejected at once with `queue_full`. `0` rejects every such
   * call at once. Default 100.
   */
  maxQueuedFrames?: number
  /**
   * Keep a presence view (`client.presence(room)`, the `presence` event) of these rooms: after
   * each join and rejoin the client sends a `members` request (one more frame against the
   * server's `rateLimit`), then follows the room's join/leave events or presence frames.
   * `false`: only rooms whose members were asked for with `client.members(room)`. Default `true`.
   */
  presence?: boolean | ((room: string) => boolean)
  /**
   * With a `token` function and a session that expires (`expiresAt` in the welcome), the client
   * fetches a new token ahead of expiry and sends it as a `refresh` frame on the live connection:
   * no reconnect, no leave or join seen by others. `marginMs` (default 30000) and a random
   * `0..jitterMs` (default 30000) before expiry, each capped at a quarter of the time left. When
   * the refresh fails, the server closes with 4001 at expiry and the client reconnects at once.
   * `false`: never refresh in place.
   */
  refresh?: { marginMs?: number, jitterMs?: number } | false
  /**
   * The application's messages (`defineMessages`): types `request` and `on`, and an event frame of
   * a defined type that fails its schema is not given to listeners (`error` with `invalid_event`).
   */
  messages?: MessageDefinitions
}

export interface RequestOptions {
  /** Overrides `requestTimeoutMs` for this call. */
  timeoutMs?: number
}

// ---- Errors ----

/** Codes of failures the client itself detects (server codes are `ErrorCode`). */
export type ClientErrorCode =
  /** No ack or error within the request timeout. */
  | 'timeout'
  /** The connection dropped after the frame was sent and before its answer: it may or may not have taken effect. */
  | 'disconnected'
  /** The client is closed (`close()`, or it gave up reconnecting). */
  | 'closed'
  /** Not connected and the offline queue is full. */
  | 'queue_full'
  /** The upgrade was refused with HTTP 401 (no token). */
  | 'unauthorized'
  /** The upgrade was refused with HTTP 403 (token or Origin refused). */
  | 'forbidden'
  /** The upgrade was refused with another HTTP status that retrying will not change (400, 404, ...). */
  | 'handshake_refused'
  /** `maxHandshakeFailures` connections in a row closed before opening, cause unknown. */
  | 'handshake_failed'
  /** `maxAttempts` reached. */
  | 'reconnect_failed'
  /** Renewing the session ahead of its expiry failed (the token function threw, or no answer in time); the server's 4001 follows. */
  | 'refresh_failed'
  /** The server closed the connection with a code that means "do not come back" (1000, 1003, 1007, 1008, 3xxx, 4xxx but 4001). */
  | 'connection_refused'
  /** An event frame of a type in `messages` failed its schema; it was not given to listeners. */
  | 'invalid_event'

export declare class RoomsClientError extends Error {
  constructor (code: ErrorCode | ClientErrorCode, message: string, details?: { status?: number, room?: string, frame?: ErrorMessage, cause?: unknown })
  readonly name: 'RoomsClientError'
  readonly code: ErrorCode | ClientErrorCode
  /**
   * HTTP status of a refused upgrade, when it could be seen: with `ws` in Node (it reports the
   * server's response), never in a browser, whose WebSocket hides why an upgrade failed.
   */
  readonly status?: number
  /** The room a failed automatic rejoin was for. */
  readonly room?: string
  /** The server's `error` frame, for server-side refusals. */
  readonly frame?: ErrorMessage
}

// ---- State and events ----

/**
 * `connecting`: first connection in progress. `open`: connected and every room's rejoin answered
 * (see `OpenInfo`), frames go out at once (except those naming a room still being rejoined, see
 * `RoomsClient.roomState`). `reconnecting`: lost, waiting to retry or retrying. `closed`: final,
 * nothing more happens.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface OpenInfo {
  connectionId: string
  user: RoomUser
  /** False for the first connection, true after a reconnect. */
  reconnected: boolean
  /** Rooms rejoined on this connection. */
  rooms: string[]
  /**
   * Rooms still in `client.rooms` whose rejoin was refused for now (`unavailable`: the server
   * cannot read the room's history, e.g. its Redis is down) and is being retried. Until a room's
   * `rejoined` event, calls naming it (`send`, `members`, `join`, requests with that `room`) wait
   * in the queue — bounded by `maxQueuedFrames` and each call's timeout — and go out, in order,
   * once it is rejoined. Empty when every room was rejoined.
   */
  pending: string[]
}

/** A room the server moved this connection into or out of (`added` / `removed` frames). */
export interface MembershipInfo {
  room: string
  /** true: the server joined it (it is now in `client.rooms` and rejoined after a reconnect); false: the server took it out (not rejoined any more). */
  joined: boolean
}

/** A room listed in `OpenInfo.pending` was rejoined: the calls waiting for it went out. */
export interface RejoinedInfo {
  room: string
}

export interface CloseInfo {
  /** The WebSocket close code (1006 when the connection dropped or the upgrade failed). */
  code: number
  reason: string
  /** Whether the client will try again. */
  willReconnect: boolean
  /**
   * Why it will not, or what went wrong at the handshake. An upgrade refused with an HTTP status
   * the client could see (`ws` in Node) carries it in `error.status`, with the code `unauthorized`
   * (401), `forbidden` (403), `rate_limited` (429: too many connections from this address),
   * `unavailable` (503 and other passing server conditions: retried) or `handshake_refused` (any
   * other status). A browser's WebSocket never shows the status: there a refused upgrade is a
   * close with 1006 and no `error`, until `maxHandshakeFailures` in a row give `handshake_failed`.
   */
  error?: RoomsClientError
}

export interface ReconnectingInfo {
  /** 1 for the first retry after a loss. */
  attempt: number
  /** The wait before this attempt (0 after an expired session, 4001). */
  delayMs: number
}

/**
 * A history room rejoined after a reconnect (see history and recovery in docs/protocol.md). `recovered`: every message published
 * while away was delivered (as `chat` or application events, before this event), `missed` of
 * them. `recovered: false`: the history no longer reaches back that far (or was lost): messages
 * may be missing, reload the room from the application's own store; the client follows the room
 * from its new position.
 */
export interface RecoveryInfo {
  room: string
  recovered: boolean
  missed: number
}

/**
 * Who is in a room (see presence in docs/protocol.md), from a `members` answer and the join/leave or presence frames
 * since. `size` counts connections across all nodes; `members` lists each user once.
 */
export interface RoomPresence {
  room: string
  size: number
  members: RoomUser[]
  /** False when the answer was cut at the server's `membersLimit`: `members` lists only some of them. */
  complete: boolean
}

/** A session renewed in place (the `session` event). */
export interface SessionInfo {
  expiresAt?: number
}

/** Events every client has. */
export interface ClientEvents {
  /** Connected, welcome received and every room's rejoin answered: rejoined (`rooms`) or retried (`pending`). */
  open: (info: OpenInfo) => void
  /** A connection (or a connection attempt) ended. */
  close: (info: CloseInfo) => void
  /** A retry is scheduled. */
  reconnecting: (info: ReconnectingInfo) => void
  state: (state: ConnectionState, previous: ConnectionState) => void
  chat: (event: ChatEvent) => void
  system: (event: SystemEvent) => void
  /** A server `error` frame that answers no pending call, or a failed automatic rejoin. */
  error: (error: RoomsClientError) => void
  /** Every frame from the server, parsed, before it is dispatched (a history room's repeat is dropped before this). */
  message: (frame: ServerMessage | AppFrame) => void
  /** A history room was rejoined after a reconnect. */
  recovery: (info: RecoveryInfo) => void
  /** A room's presence view changed (or was loaded). */
  presence: (presence: RoomPresence) => void
  /**
   * The server joined this client to a room or took it out (`fastify.rooms.join` / `leave`,
   * `joinUser` / `leaveUser`, on any node). `client.rooms` already says so: a room joined this way
   * is rejoined after a reconnect (a history room recovering from the position the server gave),
   * a room taken out is not.
   */
  membership: (info: MembershipInfo) => void
  /** A room that was pending at `open` was rejoined after a retry. */
  rejoined: (info: RejoinedInfo) => void
  /** The session was renewed on the live connection; `expiresAt`: when the new one ends (absent: never). */
  session: (info: SessionInfo) => void
}

export type ClientEventName = keyof ClientEvents

// ---- Application types (registered on the server with `fastify.rooms.handle`) ----

/** A frame of a type the core protocol does not know. */
export interface AppFrame {
  type: string
  [key: string]: unknown
}

/** One request type: the frame's fields other than `type` and `id`, and the ack's `data`. */
export interface RequestSpec<P extends object = Record<string, unknown>, R = unknown> {
  payload: P
  result: R
}

/**
 * A request type described by the TypeBox object schema given to `fastify.rooms.handle` on the
 * server (from `@sinclair/typebox` 0.34 or `typebox` 1.x).
 */
export type RequestFor<S extends ObjectSchema, R = unknown> = RequestSpec<StaticOf<S>, R>

/**
 * What an application adds to the protocol: `requests` maps a type name to a `RequestSpec`,
 * `events` maps a type name pushed by the server to its frame.
 *
 * ```ts
 * interface ChatApp {
 *   requests: { history: RequestFor<typeof HistorySchema, ChatEvent[]> }
 *   events: { typing: { type: 'typing', room: string, user: RoomUser } }
 * }
 * const client = connect<ChatApp>('/ws')
 * ```
 */
export interface AppSpec {
  requests?: object
  events?: object
}

/** The default: any application type, untyped payloads and results. */
export interface UntypedApp {
  requests: Record<string, RequestSpec>
  events: Record<string, AppFrame>
}

type IsAny<T> = 0 extends 1 & T ? true : false
// `any` (what TypeScript puts for App when it compares generic signatures) reads as UntypedApp.
type RequestsOf<App> = IsAny<App> extends true ? UntypedApp['requests'] : App extends { requests: infer R } ? R : {}
type EventsOf<App> = IsAny<App> extends true ? UntypedApp['events'] : App extends { events: infer E } ? E : {}

/** Request type names of an application. */
export type RequestName<App> = Exclude<keyof RequestsOf<App> & string, 'join' | 'leave' | 'message'>
export type RequestPayload<App, K extends PropertyKey> = RequestsOf<App> extends Record<K, { payload: infer P extends object }> ? P : never
export type RequestResult<App, K extends PropertyKey> = RequestsOf<App> extends Record<K, { result: infer R }> ? R : unknown

/** Event names an application adds (names of the built-in events are reserved). */
export type AppEventName<App> = Exclude<keyof EventsOf<App> & string, ClientEventName | 'ack'>
export type AppEventFrame<App, K extends PropertyKey> = EventsOf<App> extends Record<K, infer F> ? F : never

type RequestArgs<P> = {} extends P
  ? [payload?: P, options?: RequestOptions]
  : [payload: P, options?: RequestOptions]

// ---- The client ----

export declare class RoomsClient<App extends AppSpec = UntypedApp> {
  constructor (url: string | URL, options?: ConnectOptions)

  /** The URL connected to (relative URLs resolved against the page; never carries a protocol-borne token). */
  readonly url: string
  readonly state: ConnectionState
  /** The server's id for the current connection (from its welcome frame). */
  readonly connectionId: string | undefined
  /** Who the server says this client is (from its welcome frame). */
  readonly user: RoomUser | undefined
  /**
   * Rooms joined (acknowledged, or joined by the server: the `membership` event) and not left or
   * taken out by the server: the ones rejoined after a reconnect.
   */
  readonly rooms: ReadonlySet<string>

  /**
   * Where a room of `client.rooms` stands on the current connection. `'joined'`: the server has
   * this client in it; calls naming it go out at once. `'rejoining'`: not yet: while the client is
   * not open, and after `open` for the rooms in `OpenInfo.pending` until their `rejoined` event;
   * calls naming it wait for the rejoin. `undefined`: not one of `client.rooms`.
   */
  roomState (room: string): 'joined' | 'rejoining' | undefined

  /**
   * Resolves when the client is (or next becomes) `open`; rejects if it closes for good first, with
   * the reason when there is one: the refusal of the upgrade (`unauthorized` with `status` 401,
   * `forbidden` 403, ...; see `CloseInfo.error`), `reconnect_failed` (its `cause` the last
   * failure), `handshake_failed`, or `closed` after `close()`. The HTTP status is only seen where
   * the WebSocket implementation reports it (`ws` in Node), never in a browser.
   */
  ready (): Promise<void>

  /** Join a room. Resolves on the ack; the room is then rejoined after every reconnect. */
  join (room: string, options?: RequestOptions): Promise<void>
  /**
   * Leave a room (it is not rejoined any more, even if the call fails). A room whose rejoin is
   * being retried (`roomState` `'rejoining'` after `open`) is left without a frame, since the
   * server does not have this client in it — or, if a rejoin try is on the wire, once it is answered.
   */
  leave (room: string, options?: RequestOptions): Promise<void>
  /** Send chat text to the other members of a joined room. */
  send (room: string, text: string, options?: RequestOptions): Promise<void>
  /** Ask for a joined room's members (across nodes); the answer also (re)loads its presence view. */
  members (room: string, options?: RequestOptions): Promise<MembersAckData>
  /** The room's presence view, once loaded (see the `presence` option); undefined before, and for rooms not joined. */
  presence (room: string): RoomPresence | undefined
  /** Send an application frame (a type registered with `rooms.handle`); resolves with the ack's `data`. */
  request<K extends RequestName<App>> (type: K, ...args: RequestArgs<RequestPayload<App, K>>): Promise<RequestResult<App, K>>

  on<E extends ClientEventName> (event: E, listener: ClientEvents[E]): () => void
  on<E extends AppEventName<App>> (event: E, listener: (frame: AppEventFrame<App, E>) => void): () => void
  once<E extends ClientEventName> (event: E, listener: ClientEvents[E]): () => void
  once<E extends AppEventName<App>> (event: E, listener: (frame: AppEventFrame<App, E>) => void): () => void
  off<E extends ClientEventName> (event: E, listener: ClientEvents[E]): void
  off<E extends AppEventName<App>> (event: E, listener: (frame: AppEventFrame<App, E>) => void): void

  /**
   * Close for good: no reconnect; pending and queued calls reject with `closed`. Resolves once
   * the socket is closed. Code 1000 by default (or 3000–4999).
   */
  close (code?: number, reason?: string): Promise<void>
}

/**
 * Open a client. It connects at once and returns synchronously; calls made before it is open are
 * queued. In a page `url` may be relative (`'/ws'`, resolved against the page, `http(s):` becoming
 * `ws(s):`); in Node it must be absolute (`ws://localhost:3000/ws`), or this throws a TypeError
 * saying so.
 */
/**
 * The client's spec: a `defineMessages` definition's (`AppOf`), or a hand-written one as it is
 * (`connect<App>(url)`, the v2 form).
 */
export type ClientAppOf<App> = App extends MessageDefinitions ? AppOf<App> : App

/**
 * Open a client. With `messages` (a `defineMessages` definition) `request` and `on` are typed by
 * it, and incoming events failing their schema are dropped and reported as `invalid_event`.
 */
export declare function connect<App extends AppSpec = UntypedApp> (url: string | URL, options?: ConnectOptions & { messages?: App & MessageDefinitions }): RoomsClient<ClientAppOf<App>>

/** The subprotocol the client always offers first. */
export declare const PROTOCOL: 'rooms.v1'

/** Whether a close code from the server means "reconnect" (the documented table). */
export declare function shouldReconnect (code: number): boolean

export default connect
