// What clients send (docs/protocol.md#client--server): the frame types the plugin handles itself, their TypeBox
// schemas (compiled once), and the parse every text frame goes through first.
import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import sjson from 'secure-json-parse'
import type { MessageId } from '../../types/index.js'

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

/** A missing or non-string token is refused (forbidden) by the command, not by the schema. */
export const RefreshSchema = Type.Object({
  type: Type.Literal('refresh'),
  token: Type.Optional(Type.Unknown()),
  id: Type.Optional(MessageIdSchema)
})

/** The client frame types the plugin handles itself; `rooms.handle` may not take them. */
export const CLIENT_FRAME_TYPES = ['join', 'leave', 'message', 'members', 'refresh'] as const
export type ClientFrameType = typeof CLIENT_FRAME_TYPES[number]
const CLIENT_FRAME_TYPE_SET: ReadonlySet<string> = new Set(CLIENT_FRAME_TYPES)

export function isClientFrameType (type: string): type is ClientFrameType {
  return CLIENT_FRAME_TYPE_SET.has(type)
}

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
