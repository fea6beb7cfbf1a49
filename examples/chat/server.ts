// Chat rooms with history: the tutorial's hybrid pattern. REST creates and reads messages
// (stored in SQLite, with the server's time), WebSocket pushes them to the members of the room.
// The rooms keep their last 100 pushes (`history`), so a page that lost its connection for a
// moment gets what it missed when the client rejoins; when that is not possible (the server
// restarted, or it was away too long) the page is told and reloads the room over REST.
//
//   npm run example                        (npx tsx examples/chat/server.ts, PORT=3000 by default)
//   open http://localhost:3000/            (the page in public/, the browser client under /client/)
//
// Who is who: the page asks for a name on first load and connects with a token made of it and a
// random key of the browser's (identity.ts); `authenticate` turns the token into the user
// `{ id, name }`. A connection without a well-formed token is refused before the upgrade.
//
//   POST /api/messages {room,user,text,name?} → 201 with the saved row {id,room,user,name,text,createdAt}
//                                             (`name` defaults to `user`); every member of the room gets
//                                             {"type":"chat","id":…,"room":…,"user":{"id":…,"name":…},"text":…,"createdAt":…}
//   GET  /api/rooms/:room/messages         → the newest ?limit= (default 50, at most 200) messages,
//                                             oldest first; ?before=<id> pages further back
//   WS   /ws  {"type":"post","room","text"} → the same as the POST, as the connection's user; acked
//                                             with the saved row. The built-in {"type":"message"}
//                                             frame stays ephemeral (not stored).
//   GET  /metrics                          → Prometheus metrics, with `metrics: true` or CHAT_METRICS=1
//   Pushes carry the room's `offset` (the plugin's history); the page lists the room's members
//   from the client's presence view.
//
// CHAT_DB (or the `dbPath` option) picks the SQLite file; default examples/chat/chat.db.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify'
import createError from '@fastify/error'
import { Type, type Static } from '@sinclair/typebox'
import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { extname, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import wsRooms, { RoomsError } from '../../lib/index.js'
import { isMain, listenUntilSignalled } from '../main.js'
import type { WsRoomsOptions } from '../../types/index.js'
import { openChatStore, type ChatMessage } from './db.js'
import { userFromToken } from './identity.js'

export { tokenFor, userFromToken, nameProblem, type ChatUser } from './identity.js'

export interface ChatOptions {
  /** SQLite file (`:memory:` for a throwaway store). Default: $CHAT_DB, else examples/chat/chat.db. */
  dbPath?: string
  /** Fastify's logger option. Default `false` (the CLI entry below turns it on). */
  logger?: FastifyServerOptions['logger']
  /** Extra plugin options (path, limits, ...). Default `{ history: { size: 100 }, authenticate }` (names from tokens). */
  rooms?: WsRoomsOptions
  /** The page and its assets, served at `/`. Default examples/chat/public. */
  publicDir?: string
  /** The built browser client, served at `/client/`. Default dist/esm/client (`npm run build`). */
  clientDir?: string
  /** Prometheus metrics (prom-client) at `GET /metrics`. Default: on when $CHAT_METRICS is `1`. */
  metrics?: boolean
}

const here = fileURLToPath(new URL('.', import.meta.url))
const DEFAULT_DB = resolve(here, 'chat.db')
const DEFAULT_PUBLIC = resolve(here, 'public')
const DEFAULT_CLIENT = resolve(here, '../../dist/esm/client')

// Room names follow the plugin's rule (1..N UTF-16 code units, no control characters). JSON
// Schema's maxLength counts code points, so the exact UTF-16 bound is checked in the handlers.
const NO_CONTROL_CHARACTERS = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$'
const DEFAULT_MAX_ROOM_NAME_LENGTH = 128
const Room = Type.String({ minLength: 1, maxLength: DEFAULT_MAX_ROOM_NAME_LENGTH, pattern: NO_CONTROL_CHARACTERS })
const User = Type.String({ minLength: 1, maxLength: 64, pattern: NO_CONTROL_CHARACTERS })
const Text = Type.String({ minLength: 1, maxLength: 2000 })

export const PostMessageBody = Type.Object({ room: Room, user: User, text: Text, name: Type.Optional(User) }, { additionalProperties: false })
export const HistoryParams = Type.Object({ room: Room })
export const HistoryQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  before: Type.Optional(Type.Integer({ minimum: 1 }))
})
/** The WebSocket twin of POST /api/messages; the author is the connection's user. */
export const PostFrame = Type.Object({ room: Room, text: Text })

const InvalidRoomError = createError<'CHAT_INVALID_ROOM', [number]>('CHAT_INVALID_ROOM',
  'room must be 1..%d UTF-16 code units without control characters', 400)

/** The frame pushed to a room for a stored message; `user` has the shape of the plugin's chat frames. */
export function chatFrame ({ name, ...message }: ChatMessage): Record<string, unknown> {
  return { type: 'chat', ...message, user: { id: message.user, name } }
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8'
}

/**
 * Send `root/relativePath` if it is a regular file inside `root`, else Fastify's 404.
 * `relativePath` comes from the router, already percent-decoded, so `..`, `%2e%2e%2f`, absolute
 * paths and NUL bytes are all resolved first and refused unless the result stays under `root`.
 * Dotfiles are not served.
 */
async function sendFile (reply: FastifyReply, root: string, relativePath: string): Promise<FastifyReply> {
  const notFound = (): FastifyReply => { reply.callNotFound(); return reply }
  const file = resolve(root, relativePath)
  const inside = file.startsWith(root + sep)
  const hidden = relativePath.split(/[\\/]/).some((segment) => segment.startsWith('.'))
  if (!inside || hidden || relativePath.includes('\0')) return notFound()
  try {
    if (!(await stat(file)).isFile()) return notFound()
    const body = await readFile(file)
    return reply
      .type(CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .send(body)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return notFound()
    throw err
  }
}

export async function build (options: ChatOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  // Recovery needs history; the last 100 pushes of a room cover a short drop in a busy room.
  const roomsOptions: WsRoomsOptions = {
    history: { size: 100 },
    authenticate: (token) => userFromToken(token),
    ...options.rooms
  }
  const maxRoomNameLength = roomsOptions.maxRoomNameLength ?? DEFAULT_MAX_ROOM_NAME_LENGTH
  const publicDir = resolve(options.publicDir ?? DEFAULT_PUBLIC)
  const clientDir = resolve(options.clientDir ?? DEFAULT_CLIENT)
  const dbPath = options.dbPath ?? process.env.CHAT_DB ?? DEFAULT_DB

  // The plugin's series go into a registry of this app's own, served at /metrics for Prometheus.
  const registry = (options.metrics ?? process.env.CHAT_METRICS === '1') ? new (await import('prom-client')).Registry() : undefined
  if (registry !== undefined) roomsOptions.metrics = { registry }

  const store = openChatStore(dbPath)
  app.addHook('onClose', async () => { store.close() })
  try {
    await app.register(wsRooms, roomsOptions)
  } catch (err) {
    store.close() // the caller never gets the app to close it
    throw err
  }

  function checkRoom (room: string): void {
    if (room.length > maxRoomNameLength) throw new InvalidRoomError(maxRoomNameLength)
  }

  // ---- REST: create and read (the hybrid pattern) ----

  app.post<{ Body: Static<typeof PostMessageBody> }>('/api/messages', {
    schema: { body: PostMessageBody }
  }, async (request, reply) => {
    const { room, user, name, text } = request.body
    checkRoom(room)
    const saved = store.save({ room, user, name: name ?? user, text })
    await app.rooms.broadcast(saved.room, chatFrame(saved))
    return reply.code(201).send(saved)
  })

  app.get<{ Params: Static<typeof HistoryParams>, Querystring: Static<typeof HistoryQuery> }>('/api/rooms/:room/messages', {
    schema: { params: HistoryParams, querystring: HistoryQuery }
  }, async (request) => {
    checkRoom(request.params.room)
    return store.history(request.params.room, request.query)
  })

  // ---- WebSocket: a stored message sent over the socket ----

  app.rooms.handle('post', PostFrame, async (conn, message) => {
    // Only members post; a room the connection is in has a valid name already. RoomsError answers
    // with the contract's error frame; nothing is stored or sent.
    if (!conn.rooms.has(message.room)) throw new RoomsError('not_in_room', `Not in room ${JSON.stringify(message.room)}`)
    const { id, name } = conn.user
    const saved = store.save({ room: message.room, user: id, name: typeof name === 'string' ? name : id, text: message.text })
    await app.rooms.broadcast(saved.room, chatFrame(saved))
    return saved
  })

  if (registry !== undefined) {
    app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  }

  // ---- The page and the browser client ----

  if (!existsSync(resolve(clientDir, 'index.js'))) {
    app.log.warn({ clientDir }, 'browser client not built: /client/ will answer 404 until `npm run build`')
  }
  app.get('/', async (_request, reply) => sendFile(reply, publicDir, 'index.html'))
  app.get<{ Params: { '*': string } }>('/client/*', async (request, reply) => sendFile(reply, clientDir, request.params['*']))
  app.get<{ Params: { '*': string } }>('/*', async (request, reply) => sendFile(reply, publicDir, request.params['*']))

  return app
}

if (isMain(import.meta.url)) await listenUntilSignalled(await build({ logger: true }), 3000)
