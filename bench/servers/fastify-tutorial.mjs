// The tutorial's rooms (bench/baseline/tutorial-rooms.mjs, unchanged) served by Fastify +
// @fastify/websocket instead of node:http + ws: the token checked in a preValidation hook, the
// upgrade routed by Fastify. Not the plugin: run it in the plugin's column to see what Fastify's
// route for the upgrade costs by itself, the floor under any Fastify plugin's connect figure:
//
//   node bench/run.mjs --scenario connect --plugin-server bench/servers/fastify-tutorial.mjs
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { serveControl } from './control.mjs'
import { onConnection, verifyToken } from '../baseline/tutorial-rooms.mjs'

const app = Fastify({ logger: false })
await app.register(websocket, { options: { maxPayload: 65536 } })

app.get('/ws', {
  websocket: true,
  preValidation: (request, reply, done) => {
    const token = request.query.token
    if (!token) {
      reply.code(401).send('Authentication required')
      return
    }
    request.user = verifyToken(token)
    done()
  }
}, (socket, request) => onConnection(socket, request.user))

await app.listen({ port: Number(process.env.BENCH_PORT ?? 0), host: '127.0.0.1', backlog: 4096 })

serveControl({
  port: app.server.address().port,
  connections: () => app.websocketServer.clients.size,
  close: () => app.close()
})
