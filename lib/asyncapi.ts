// `fastify.rooms.asyncapi()`: an AsyncAPI 3.0.0 document of the WebSocket endpoint, built when
// asked (never on a frame's path): the protocol's own frames, and every type registered with
// `handle` or `implement`, their schemas as JSON Schema.
import type { HandlerRegistry } from './commands/registry.js'

type Json = Record<string, unknown>

const str = { type: 'string' }
const int = { type: 'integer' }
const id = { anyOf: [str, { type: 'number' }], description: 'Set it to get an ack (or an error) carrying it.' }
const user = { type: 'object', properties: { id: str }, required: ['id'], description: 'What authenticate returned, or { id: "anon-…" }.' }

function frame (type: string, properties: Json, required: string[], extra: Json = {}): Json {
  return { type: 'object', properties: { type: { const: type }, ...properties }, required: ['type', ...required], ...extra }
}

function system (event: string, properties: Json, required: string[]): Json {
  return frame('system', { event: { const: event }, ...properties }, ['event', ...required])
}

/** The protocol's frames: [name, summary, payload], by direction. */
const CLIENT_FRAMES: Array<[string, string, Json]> = [
  ['join', 'Join a room; with `since`, recover what a history room published after that position.', frame('join', { room: str, since: { type: 'object', properties: { epoch: str, offset: int }, required: ['epoch', 'offset'] }, id }, ['room'])],
  ['leave', 'Leave a room.', frame('leave', { room: str, id }, ['room'])],
  ['message', 'Send a text to every other member of a room.', frame('message', { room: str, text: str, id }, ['room', 'text'])],
  ['members', 'Ask for the members of a room (answered in the ack\'s data).', frame('members', { room: str, id }, ['room'])],
  ['refresh', 'Replace the session with a new token for the same user.', frame('refresh', { token: str, id }, ['token'])]
]

const SERVER_FRAMES: Array<[string, string, Json]> = [
  ['welcome', 'The first frame after the upgrade.', system('welcome', { text: { const: 'Connected to WebSocket server' }, connectionId: str, user, expiresAt: int }, ['text', 'connectionId', 'user'])],
  ['joined', 'A member joined a room (rooms whose presence mode is each).', system('join', { room: str, user, text: { const: 'User joined room' } }, ['room', 'user', 'text'])],
  ['left', 'A member left a room (rooms whose presence mode is each).', system('leave', { room: str, user, text: { const: 'User left room' } }, ['room', 'user', 'text'])],
  ['presence', 'The joins and leaves of one interval in a batched room.', system('presence', { room: str, joined: { type: 'array', items: user }, left: { type: 'array', items: user }, size: int }, ['room', 'joined', 'left', 'size'])],
  ['added', 'The server joined this connection to a room.', system('added', { room: str, epoch: str, offset: int }, ['room'])],
  ['removed', 'The server took this connection out of a room.', system('removed', { room: str }, ['room'])],
  ['chat', 'A message from another member of a room.', frame('chat', { room: str, user, text: str, offset: int }, ['room', 'user', 'text'])],
  ['ack', 'A frame that carried an id took effect.', frame('ack', { id, data: {} }, ['id'])],
  ['error', 'A frame was refused.', frame('error', {
    code: { enum: ['invalid_message', 'rate_limited', 'forbidden', 'not_in_room', 'too_many_rooms', 'invalid_room', 'internal_error', 'unavailable'] },
    text: str,
    id
  }, ['code', 'text'])]
]

/** Plain JSON Schema: a 0.34 schema's symbol keys (Kind, Optional) are dropped, as JSON drops them. */
function jsonSchema (schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema)) as Json
}

/** The frame of an application type: its schema's fields plus `type` and `id`. */
function envelope (type: string, schema: unknown): Json {
  const { properties, required, ...rest } = jsonSchema(schema)
  return {
    ...rest,
    type: 'object',
    properties: { ...(properties as Json), type: { const: type }, id },
    required: ['type', ...(Array.isArray(required) ? required : [])]
  }
}

/** A key AsyncAPI accepts for a message or an operation. */
function key (name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_')
}

export interface AsyncApiInfo {
  title?: string
  version?: string
}

export function asyncApiDocument (path: string, registry: HandlerRegistry, info: AsyncApiInfo = {}): Json {
  const messages: Json = {}
  const operations: Json = {}
  const channel = { $ref: '#/channels/rooms' }
  const add = (name: string, summary: string, payload: Json): string => {
    const k = key(name)
    messages[k] = { name, summary, contentType: 'application/json', payload }
    return k
  }
  const ref = (k: string): Json => ({ $ref: `#/channels/rooms/messages/${k}` })
  const clientSends: string[] = CLIENT_FRAMES.map(([name, summary, payload]) => add(name, summary, payload))
  const serverSends: string[] = SERVER_FRAMES.map(([name, summary, payload]) => add(name, summary, payload))
  for (const k of clientSends) {
    operations[`send_${k}`] = { action: 'send', channel, messages: [ref(k)] }
  }
  for (const [type, entry] of registry.entries()) {
    const k = add(`app.${type}`, `Application request "${type}".`, envelope(type, entry.schema))
    const operation: Json = { action: 'send', channel, messages: [ref(k)] }
    if (entry.result !== undefined) {
      const ack = add(`app.${type}.ack`, `The ack of "${type}": its data is the handler's result.`, frame('ack', { id, data: jsonSchema(entry.result) }, ['id', 'data']))
      operation.reply = { channel, messages: [ref(ack)] }
    }
    operations[`send_${key(type)}`] = operation
  }
  operations.receive = { action: 'receive', channel, messages: serverSends.map(ref) }
  return {
    asyncapi: '3.0.0',
    info: {
      title: info.title ?? 'fastify-ws-rooms',
      version: info.version ?? '1.0.0',
      description: 'WebSocket rooms: JSON text frames, each with a "type".'
    },
    defaultContentType: 'application/json',
    channels: { rooms: { address: path, title: 'The rooms endpoint', messages } },
    operations
  }
}
