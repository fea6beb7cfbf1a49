// The wire protocol of fastify-ws-rooms (CONTRACT §4, §5, §8): the JSON frames a client sends
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

// ---- Client → server (CONTRACT §4) ----

export interface JoinMessage { type: 'join', room: string, id?: MessageId }
export interface LeaveMessage { type: 'leave', room: string, id?: MessageId }
export interface ChatMessageIn { type: 'message', room: string, text: string, id?: MessageId }
export type ClientMessage = JoinMessage | LeaveMessage | ChatMessageIn

// ---- Server → client (CONTRACT §5) ----

export interface WelcomeEvent {
  type: 'system'
  event: 'welcome'
  text: 'Connected to WebSocket server'
  connectionId: string
  user: RoomUser
}
export interface JoinEvent { type: 'system', event: 'join', room: string, user: RoomUser, text: 'User joined room' }
export interface LeaveEvent { type: 'system', event: 'leave', room: string, user: RoomUser, text: 'User left room' }
export type SystemEvent = WelcomeEvent | JoinEvent | LeaveEvent
export interface ChatEvent { type: 'chat', room: string, user: RoomUser, text: string }
export interface AckMessage { type: 'ack', id: MessageId, data?: unknown }

export type ErrorCode =
  | 'invalid_message'
  | 'rate_limited'
  | 'forbidden'
  | 'not_in_room'
  | 'too_many_rooms'
  | 'invalid_room'
  | 'internal_error'

export interface ErrorMessage { type: 'error', code: ErrorCode, text: string, id?: MessageId }
export type ServerMessage = SystemEvent | ChatEvent | AckMessage | ErrorMessage

/** Close codes the server uses (CONTRACT §8). */
export type CloseCode = 1001 | 1003 | 1007 | 1008 | 1009 | 1011 | 1013
