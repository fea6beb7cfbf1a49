// The floor: the least any rooms server on `ws` must do for the bench's fan-out, with nothing
// else (no authentication beyond "a token is there", no validation, no limits, no slow-consumer
// handling, no presence events, no timers). Per frame it parses the JSON and acts on join, leave
// or message; a message is framed once (an unmasked text frame) into its room's list for this
// tick and acked. At the end of the tick (setImmediate) each room's frames are joined into one
// Buffer that every member shares, and each connection gets one write of its whole output of
// the tick (acks, the rooms' Buffers) on the raw socket. A publisher does not receive its own
// messages, as in the plugin and the tutorial (it gets the room's frames without its own).
// The plugin's figures are read against this one: what it spends above the floor is its own.
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { serveControl } from './control.mjs'

/** An unmasked WebSocket text frame (RFC 6455 §5.2) in one Buffer. */
function frameText (payload) {
  const length = Buffer.byteLength(payload)
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = 0x81
  if (length < 126) {
    frame[1] = length
  } else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.write(payload, headerLength)
  return frame
}

const rooms = new Map() // room -> Set<conn>
const dirtyRooms = new Map() // room -> { frames: Buffer[], senders: conn[] } of this tick
const dirtyConns = new Set() // connections with output this tick
let flushScheduled = false

function queue (conn, buf) {
  if (conn.out === null) conn.out = [buf]
  else conn.out.push(buf)
  dirtyConns.add(conn)
  schedule()
}

function schedule () {
  if (flushScheduled) return
  flushScheduled = true
  setImmediate(flush)
}

function flush () {
  flushScheduled = false
  for (const [room, { frames, senders }] of dirtyRooms) {
    const members = rooms.get(room)
    if (members === undefined) continue
    const shared = frames.length === 1 ? frames[0] : Buffer.concat(frames)
    for (const conn of members) {
      if (!senders.includes(conn)) {
        queue(conn, shared)
        continue
      }
      // A publisher of this tick: the room's frames without its own.
      const own = frames.filter((_, i) => senders[i] !== conn)
      if (own.length > 0) queue(conn, own.length === 1 ? own[0] : Buffer.concat(own))
    }
  }
  dirtyRooms.clear()
  for (const conn of dirtyConns) {
    const out = conn.out
    conn.out = null
    if (conn.socket.destroyed) continue
    conn.socket.write(out.length === 1 ? out[0] : Buffer.concat(out))
  }
  dirtyConns.clear()
  flushScheduled = false
}

function ack (conn, id) {
  if (id !== undefined) queue(conn, frameText(`{"type":"ack","id":${JSON.stringify(id)}}`))
}

let nextId = 0

function onConnection (ws, token) {
  const conn = { ws, socket: ws._socket, out: null, rooms: new Set(), userJson: JSON.stringify({ id: token }) }
  queue(conn, frameText(`{"type":"system","event":"welcome","text":"Connected to WebSocket server","connectionId":"f${nextId++}","user":${conn.userJson}}`))
  ws.on('message', (data) => {
    let msg
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    const room = msg?.room
    if (typeof room !== 'string') return
    if (msg.type === 'join') {
      let members = rooms.get(room)
      if (members === undefined) rooms.set(room, members = new Set())
      members.add(conn)
      conn.rooms.add(room)
      ack(conn, msg.id)
    } else if (msg.type === 'leave') {
      leave(conn, room)
      ack(conn, msg.id)
    } else if (msg.type === 'message' && conn.rooms.has(room)) {
      let pending = dirtyRooms.get(room)
      if (pending === undefined) dirtyRooms.set(room, pending = { frames: [], senders: [] })
      pending.frames.push(frameText(`{"type":"chat","room":${JSON.stringify(room)},"user":${conn.userJson},"text":${JSON.stringify(msg.text)}}`))
      pending.senders.push(conn)
      ack(conn, msg.id)
    }
  })
  ws.on('close', () => {
    for (const room of conn.rooms) leave(conn, room)
    dirtyConns.delete(conn)
  })
  ws.on('error', () => {})
}

function leave (conn, room) {
  conn.rooms.delete(room)
  const members = rooms.get(room)
  if (members === undefined) return
  members.delete(conn)
  if (members.size === 0) rooms.delete(room)
}

const server = http.createServer((req, res) => {
  res.writeHead(404)
  res.end()
})
const wss = new WebSocketServer({ server, maxPayload: 65536, perMessageDeflate: false })
wss.on('connection', (ws, req) => {
  const token = new URL(req.url, 'http://localhost').searchParams.get('token')
  if (!token) {
    ws.close(1008, 'Authentication required')
    return
  }
  onConnection(ws, token)
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
