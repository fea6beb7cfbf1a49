// The tutorial rooms server the plugin is measured against: node:http + ws, a
// Map<room, Set<ws>>, JSON.stringify once per broadcast, then client.send() per member (one
// write system call per receiver per message). It speaks the subset of the plugin's wire
// protocol the load generator uses (welcome, join/leave with ack and events, message -> chat
// to the others + ack, not_in_room, ?token= checked before the upgrade), so one generator
// drives both. Kept deliberately as the tutorial writes it: no batching, no framing reuse.
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { WebSocket, WebSocketServer } from 'ws'
import { serveControl } from '../servers/control.mjs'

// The trivial token check the bench uses on both sides: any non-empty token is a user id.
function verifyToken (token) {
  return { id: token }
}

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

const rooms = new Map() // roomName -> Set<WebSocket>

function joinRoom (ws, roomName) {
  if (!rooms.has(roomName)) {
    rooms.set(roomName, new Set())
  }
  rooms.get(roomName).add(ws)
}

function leaveRoom (ws, roomName) {
  const room = rooms.get(roomName)
  if (room) {
    room.delete(ws)
    if (room.size === 0) rooms.delete(roomName)
  }
}

function broadcastToRoom (roomName, message, excludeWs = null) {
  const room = rooms.get(roomName)
  if (!room) return
  const data = JSON.stringify(message)
  room.forEach(client => {
    if (client !== excludeWs && client.readyState === WebSocket.OPEN) {
      client.send(data)
    }
  })
}

function ack (ws, id) {
  if (id !== undefined) ws.send(JSON.stringify({ type: 'ack', id }))
}

wss.on('connection', (ws, req) => {
  const user = req.user
  ws.send(JSON.stringify({
    type: 'system',
    event: 'welcome',
    text: 'Connected to WebSocket server',
    connectionId: randomUUID(),
    user
  }))

  ws.on('message', (data) => {
    try {
      const msg = JSON.parse(data)
      switch (msg.type) {
        case 'join':
          joinRoom(ws, msg.room)
          broadcastToRoom(msg.room, { type: 'system', event: 'join', room: msg.room, user, text: 'User joined room' })
          ack(ws, msg.id)
          break
        case 'message':
          if (!rooms.get(msg.room)?.has(ws)) {
            ws.send(JSON.stringify({ type: 'error', code: 'not_in_room', text: 'Not in room', id: msg.id }))
            break
          }
          broadcastToRoom(msg.room, { type: 'chat', room: msg.room, user, text: msg.text }, ws)
          ack(ws, msg.id)
          break
        case 'leave':
          leaveRoom(ws, msg.room)
          broadcastToRoom(msg.room, { type: 'system', event: 'leave', room: msg.room, user, text: 'User left room' })
          ack(ws, msg.id)
          break
        default:
          ws.send(JSON.stringify({ type: 'error', code: 'invalid_message', text: 'Invalid message format', id: msg.id }))
      }
    } catch (e) {
      ws.send(JSON.stringify({ type: 'error', code: 'invalid_message', text: 'Invalid message format' }))
    }
  })

  ws.on('close', () => {
    // cleanup - remove from all rooms
    rooms.forEach((clients, room) => {
      if (clients.has(ws)) {
        clients.delete(ws)
        broadcastToRoom(room, { type: 'system', event: 'leave', room, user, text: 'User left room' })
        if (clients.size === 0) rooms.delete(room)
      }
    })
  })

  ws.on('error', () => {})
})

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
