// The tutorial's echo server, done with the plugin: one Fastify server answers plain HTTP
// (`GET /` → 'WebSocket server running') and upgrades `/ws`. The plugin sends the welcome
// frame, checks Origin, limits payload size and frame rate, and drops idle clients; this file
// only adds the application message type `echo`.
//
//   npx tsx examples/echo/server.ts              (PORT=8080 by default)
//   → {"type":"echo","text":"hello","id":1}
//   ← {"type":"echo","text":"hello"}             (the echo frame, to this connection only)
//   ← {"type":"ack","id":1,"data":{"text":"hello"}}
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Type } from '@sinclair/typebox'
import wsRooms from '../../lib/index.js'
import { isMain, listenUntilSignalled } from '../main.js'
import type { WsRoomsOptions } from '../../types/index.js'

export interface EchoOptions {
  /** Fastify's logger option. Default `false` (the CLI entry below turns it on). */
  logger?: FastifyServerOptions['logger']
  /** Extra plugin options (path, limits, ...). */
  rooms?: WsRoomsOptions
}

/** The echo frame's fields besides `type` and `id`; longer texts are refused with `invalid_message`. */
export const EchoMessage = Type.Object({ text: Type.String({ maxLength: 4096 }) })

export async function build (options: EchoOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(wsRooms, options.rooms ?? {})

  app.get('/', async (_request, reply) => {
    return reply.type('text/plain; charset=utf-8').send('WebSocket server running')
  })

  app.rooms.handle('echo', EchoMessage, (conn, message) => {
    conn.send({ type: 'echo', text: message.text })
    // Sent back as the ack's `data` when the frame carried an `id`.
    return { text: message.text }
  })

  // The tutorial's console lines, through Fastify's logger (the text itself is not logged).
  app.rooms.on('connect', (conn) => {
    app.log.info({ connectionId: conn.id, ip: conn.ip }, 'client connected')
  })
  app.rooms.on('disconnect', (conn, code) => {
    app.log.info({ connectionId: conn.id, code }, 'client disconnected')
  })

  return app
}

if (isMain(import.meta.url)) await listenUntilSignalled(await build({ logger: true }), 8080)
