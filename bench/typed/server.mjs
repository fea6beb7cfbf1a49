// The server of bench/typed/result-check.mjs, in its own process so its CPU time is its own:
// `plain` registered with `handle`, `checked` with `implement` (its result checked before the
// ack); both broadcast one frame to the room and return the same value. Reports its port, then
// answers 'cpu' messages with process.cpuUsage().
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import wsRooms, { defineMessages } from '../../dist/esm/index.js'

const Payload = Type.Object({ room: Type.String(), text: Type.String() })
const Result = Type.Object({ id: Type.Integer(), room: Type.String(), text: Type.String() })
const messages = defineMessages({
  requests: { checked: { payload: Payload, result: Result } },
  events: { posted: Type.Object({ room: Type.String(), text: Type.String() }) }
})

const app = Fastify({ logger: false })
await app.register(wsRooms, { rateLimit: false, maxConnectionsPerIp: 2000 })
const fanout = process.argv[2] !== 'no-fanout'
let n = 0
app.rooms.handle('plain', Payload, async (_conn, msg) => {
  if (fanout) await app.rooms.broadcast(msg.room, { type: 'posted', room: msg.room, text: msg.text })
  return { id: ++n, room: msg.room, text: msg.text }
})
const api = app.rooms.implement(messages, {
  checked: async (_conn, msg) => {
    if (fanout) await api.broadcast(msg.room, 'posted', { room: msg.room, text: msg.text })
    return { id: ++n, room: msg.room, text: msg.text }
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
process.send({ port: app.server.address().port })
process.on('message', (m) => {
  if (m === 'cpu') process.send({ cpu: process.cpuUsage() })
  if (m === 'stop') app.close().then(() => process.exit(0))
})
