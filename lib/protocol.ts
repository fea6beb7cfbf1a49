// The message envelope (CONTRACT §4–§5): TypeBox schemas for what clients send, compiled once,
// and the server frames, built as strings so each is serialized exactly once.
import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import sjson from 'secure-json-parse'
import type { ErrorCode, MessageId } from '../types/index.js'

export const MessageIdSchema = Type.Union([Type.String(), Type.Number()])

/** A position in a history room's stream (§9): the offset is a non-negative integer. */
export const StreamPositionSchema = Type.Object({
  epoch: Type.String(),
  offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
})

export const JoinSchema = Type.Object({
  type: Type.Literal('join'),
  room: Type.String(),
  since: Type.Optional(StreamPositionSchema),
  id: Type.Optional(MessageIdSchema)
})
export const LeaveSchema = Type.Object({
  type: Type.Literal('leave'),
  room: Type.String(),
  id: Type.Optional(MessageIdSchema)
})
export const ChatSchema = Type.Object({
  type: Type.Literal('message'),
  room: Type.String(),
  text: Type.String(),
  id: Type.Optional(MessageIdSchema)
})

export const MembersSchema = Type.Object({
  type: Type.Literal('members'),
  room: Type.String(),
  id: Type.Optional(MessageIdSchema)
})

export const BUILTIN_TYPES = new Set(['join', 'leave', 'message', 'members'])

export function compile<T extends TSchema> (schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema)
}

export type ParsedFrame =
  | { ok: true, message: Record<string, unknown> & { type: string } }
  | { ok: false, text: string, id: MessageId | undefined }

/** Parse a text frame into an object with a string `type`, refusing prototype-poisoning keys. */
export function parseFrame (text: string): ParsedFrame {
  let value: unknown
  try {
    value = sjson.parse(text)
  } catch {
    return { ok: false, text: 'Invalid message format: not valid JSON', id: undefined }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, text: 'Invalid message format: expected a JSON object', id: undefined }
  }
  const message = value as Record<string, unknown>
  if (typeof message.type !== 'string') {
    return { ok: false, text: 'Invalid message format: /type Expected string', id: idOf(message) }
  }
  return { ok: true, message: message as Record<string, unknown> & { type: string } }
}

/** The frame's `id`, when it is one the contract allows (echoed on errors). */
export function idOf (message: Record<string, unknown>): MessageId | undefined {
  const id = message.id
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : undefined
}

export function schemaErrorText (check: TypeCheck<TSchema>, value: unknown): string {
  const first = check.Errors(value).First()
  return first === undefined
    ? 'Invalid message format'
    : `Invalid message format: ${first.path === '' ? '/' : first.path} ${first.message}`
}

// Room names: 1..N UTF-16 code units, no C0/C1 control characters (CONTRACT §2).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/

export function isValidRoomName (room: string, maxLength: number): boolean {
  return room.length > 0 && room.length <= maxLength && !CONTROL_CHARACTER.test(room)
}

// ---- Server frames. Strings are escaped with JSON.stringify; users arrive pre-serialized. ----

export function welcomeFrame (connectionId: string, userJson: string, expiresAt?: number): string {
  const expiry = expiresAt === undefined ? '' : `,"expiresAt":${expiresAt}`
  return `{"type":"system","event":"welcome","text":"Connected to WebSocket server","connectionId":${JSON.stringify(connectionId)},"user":${userJson}${expiry}}`
}

export function joinEventFrame (room: string, userJson: string): string {
  return `{"type":"system","event":"join","room":${JSON.stringify(room)},"user":${userJson},"text":"User joined room"}`
}

export function leaveEventFrame (room: string, userJson: string): string {
  return `{"type":"system","event":"leave","room":${JSON.stringify(room)},"user":${userJson},"text":"User left room"}`
}

/** §10: the users (serialized) who joined and left a `batched` room during one interval, and its size across nodes. */
export function presenceFrame (room: string, joined: string[], left: string[], size: number): string {
  return `{"type":"system","event":"presence","room":${JSON.stringify(room)},"joined":[${joined.join(',')}],"left":[${left.join(',')}],"size":${size}}`
}

/** The server joined this connection to `room`; in a history room with the join's position (where recovery starts from). */
export function addedFrame (room: string, position?: { epoch: string, offset: number }): string {
  const at = position === undefined ? '' : `,"epoch":${JSON.stringify(position.epoch)},"offset":${position.offset}`
  return `{"type":"system","event":"added","room":${JSON.stringify(room)}${at}}`
}

/** The server took this connection out of `room`. */
export function removedFrame (room: string): string {
  return `{"type":"system","event":"removed","room":${JSON.stringify(room)}}`
}

export function chatFrame (room: string, userJson: string, text: string): string {
  return `{"type":"chat","room":${JSON.stringify(room)},"user":${userJson},"text":${JSON.stringify(text)}}`
}

export function ackFrame (id: MessageId, data?: unknown): string {
  if (data === undefined) return `{"type":"ack","id":${JSON.stringify(id)}}`
  return JSON.stringify({ type: 'ack', id, data })
}

export function errorFrame (code: ErrorCode, text: string, id?: MessageId): string {
  return id === undefined
    ? JSON.stringify({ type: 'error', code, text })
    : JSON.stringify({ type: 'error', code, text, id })
}
