// The wire protocol of fastify-ws-rooms (described in docs/protocol.md): the JSON frames a client sends
// and receives, and the close codes the server uses. Self-contained on purpose: it imports
// nothing (no fastify, no typebox, no Node or DOM types), so the browser client's types
// (./client.d.ts) and the server's (./index.d.ts, which re-exports all of this) share one
// definition of the protocol without the client pulling in server-side packages.

/** Who is on the other end of a connection: whatever `authenticate` returned (an `id` is required). */
export interface RoomUser {
  id: string
  [key: string]: unknown
}

export type MessageId = string | number

// ---- Client → server ----

/** A position in a history room's stream: its epoch and the last offset seen. */
export interface StreamPosition { epoch: string, offset: number }

/** `since`: recover what was published after this position, when the history still holds it. */
export interface JoinMessage { type: 'join', room: string, since?: StreamPosition, id?: MessageId }
export interface LeaveMessage { type: 'leave', room: string, id?: MessageId }
export interface ChatMessageIn { type: 'message', room: string, text: string, id?: MessageId }
/** The room's members across nodes, answered in the ack's data (`MembersAckData`). */
export interface MembersMessage { type: 'members', room: string, id?: MessageId }
/** A new token for the live connection: same user, new expiry and grants; acked with `{ expiresAt? }`. */
export interface RefreshMessage { type: 'refresh', token: string, id?: MessageId }
export type ClientMessage = JoinMessage | LeaveMessage | ChatMessageIn | MembersMessage | RefreshMessage

// ---- Server → client ----

export interface WelcomeEvent {
  type: 'system'
  event: 'welcome'
  text: 'Connected to WebSocket server'
  connectionId: string
  user: RoomUser
  /** When `authenticate` returned `{ user, expiresAt }`; the server closes with 4001 at that time. */
  expiresAt?: number
}
export interface JoinEvent { type: 'system', event: 'join', room: string, user: RoomUser, text: 'User joined room' }
export interface LeaveEvent { type: 'system', event: 'leave', room: string, user: RoomUser, text: 'User left room' }
/** The joins and leaves of one `presenceInterval` in a `batched` room; `size` counts every node. */
export interface PresenceEvent { type: 'system', event: 'presence', room: string, joined: RoomUser[], left: RoomUser[], size: number }
/**
 * The server joined this connection to `room` (`fastify.rooms.join`, `joinUser`). In a history
 * room it carries the room's `epoch` and the `offset` of the last message before the join took
 * effect, as a join's ack would: every later message reaches the connection, so a rejoin with
 * `since` from here recovers exactly what it missed. Not sent for a room the connection is already in.
 */
export interface AddedEvent { type: 'system', event: 'added', room: string, epoch?: string, offset?: number }
/** The server took this connection out of `room` (`fastify.rooms.leave`, `leaveUser`). */
export interface RemovedEvent { type: 'system', event: 'removed', room: string }
export type SystemEvent = WelcomeEvent | JoinEvent | LeaveEvent | PresenceEvent | AddedEvent | RemovedEvent
/** `offset`: in history rooms, the message's place in the room's stream. */
export interface ChatEvent { type: 'chat', room: string, user: RoomUser, text: string, offset?: number }
export interface AckMessage { type: 'ack', id: MessageId, data?: unknown }

/** The ack data of a join of a history room without `since`. */
export interface HistoryJoinAckData { epoch: string, offset: number }
/** The ack data of a join with `since`: `recovered` says whether every missed message was sent before the ack. */
export interface RecoveryAckData { recovered: boolean, epoch: string, offset: number }
/** The ack data of a `message` to a history room. */
export interface MessageAckData { offset: number }
/** The ack data of a `members` request. */
export interface MembersAckData { size: number, members: Array<{ connectionId: string, user: RoomUser }> }

export type ErrorCode =
  | 'invalid_message'
  | 'rate_limited'
  | 'forbidden'
  | 'not_in_room'
  | 'too_many_rooms'
  | 'invalid_room'
  | 'internal_error'
  /** A history room's messages cannot be ordered right now (its adapter cannot reach Redis). */
  | 'unavailable'

export interface ErrorMessage { type: 'error', code: ErrorCode, text: string, id?: MessageId }
export type ServerMessage = SystemEvent | ChatEvent | AckMessage | ErrorMessage

/**
 * Close codes the server uses (docs/protocol.md lists each): 1012 when a history room this connection is in
 * lost messages the history no longer holds (rejoin with `since` to learn `recovered: false`),
 * 4001 when the session expired, 4000 (or the code given, 4000–4999) from `disconnectUser`.
 */
export type CloseCode = 1001 | 1003 | 1007 | 1008 | 1009 | 1011 | 1012 | 1013 | 4000 | 4001
