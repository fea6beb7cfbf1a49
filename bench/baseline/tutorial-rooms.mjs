// The tutorial's rooms, shared by the baseline server (node:http + ws) and the same logic
// served by Fastify + @fastify/websocket (bench/servers/fastify-tutorial.mjs): a
// Map<room, Set<ws>>, JSON.stringify once per broadcast, then client.send() per member.
import { randomUUID } from 'node:crypto'
import { WebSocket } from 'ws'

// The trivial token check the bench uses on both sides: any non-empty token is a user id.
export function verifyToken (token) {
  return { id: token }
}

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

/** The tutorial's connection handler: welcome, then join/leave/message as the tutorial writes them. */
export function onConnection (ws, user) {
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
}
