// The tutorial rooms server the plugin is measured against: node:http + ws, a
// Map<room, Set<ws>>, JSON.stringify once per broadcast, then client.send() per member (one
// write system call per receiver per message). It speaks the subset of the plugin's wire
// protocol the load generator uses (welcome, join/leave with ack and events, message -> chat
// to the others + ack, not_in_room, ?token= checked before the upgrade), so one generator
// drives both. Kept deliberately as the tutorial writes it: no batching, no framing reuse.
// The rooms logic is in tutorial-rooms.mjs (servers/fastify-tutorial.mjs serves it through Fastify).
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { serveControl } from '../servers/control.mjs'
import { onConnection, verifyToken } from './tutorial-rooms.mjs'

const server = http.createServer((req, res) => {
  res.writeHead(200)
  res.end('WebSocket server running')
})

const wss = new WebSocketServer({
  server,
  maxPayload: 65536,
  verifyClient: (info, accept) => {
    const url = new URL(info.req.url, 'http://localhost')
    if (url.pathname !== '/ws') {
      accept(false, 404)
      return
    }
    const token = url.searchParams.get('token')
    if (!token) {
      accept(false, 401, 'Authentication required')
      return
    }
    try {
      info.req.user = verifyToken(token)
      accept(true)
    } catch {
      accept(false, 403, 'Invalid token')
    }
  }
})

wss.on('connection', (ws, req) => onConnection(ws, req.user))

server.listen({ port: Number(process.env.BENCH_PORT ?? 0), host: '127.0.0.1', backlog: 4096 }, () => {
  serveControl({
    port: server.address().port,
    connections: () => wss.clients.size,
    close: () => new Promise((resolve) => {
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      server.close(() => resolve())
    })
  })
})
