// With permessage-deflate negotiated (a @fastify/websocket the user set up with compression),
// frames go through ws.send, one deflate per receiver: slower, but the same messages in the same order.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import wsRooms from '../lib/index.js'
import { connect, join } from './helpers.js'

async function compressedServer (t: any, options = {}): Promise<{ app: ReturnType<typeof Fastify>, url: string }> {
  const app = Fastify()
  await app.register(websocket, { options: { perMessageDeflate: { threshold: 0 } } })
  await app.register(wsRooms, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws` }
}

t.test('with compression: broadcasts, acks and chat arrive, in order', async (t) => {
  const { app, url } = await compressedServer(t)
  const a = await connect(url, { perMessageDeflate: true })
  const b = await connect(url, { perMessageDeflate: true })
  t.match(a.ws.extensions, /permessage-deflate/, 'compression was negotiated')
  await join(a, 'r')
  await join(b, 'r')
  for (let i = 0; i < 50; i++) a.send({ type: 'message', room: 'r', text: `m${i}`, id: i })
  await app.rooms.broadcast('r', { type: 'notice', text: 'x'.repeat(10_000) })
  const chats = []
  for (let i = 0; i < 50; i++) chats.push((await b.next({ type: 'chat' })).text)
  t.same(chats, Array.from({ length: 50 }, (_, i) => `m${i}`), 'chat in order')
  const acks = []
  for (let i = 0; i < 50; i++) acks.push((await a.next({ type: 'ack' })).id)
  t.same(acks, Array.from({ length: 50 }, (_, i) => i), 'acks in order')
  t.equal((await b.next({ type: 'notice' })).text.length, 10_000)
  await a.close()
  await b.close()
})

t.test('with compression: a receiver that does not read is still closed with 1013', async (t) => {
  const { app, url } = await compressedServer(t, { maxBufferedBytes: 256 * 1024 })
  const reader = await connect(url, { perMessageDeflate: true })
  const stuck = await connect(url, { perMessageDeflate: true })
  await join(reader, 'r')
  await join(stuck, 'r')
  ;(stuck.ws as any)._socket.pause()
  // Random bytes in base64 hardly compress, so the unsent bytes really grow.
  const noise = () => randomBytes(12 * 1024).toString('base64')
  for (let i = 0; i < 400 && app.rooms.stats().slowConsumersClosed === 0; i++) {
    await app.rooms.broadcast('r', { type: 'noise', text: noise() })
    await reader.next({ type: 'noise' }) // paced by an honest reader: compression is not the bottleneck
  }
  t.equal(app.rooms.stats().slowConsumersClosed, 1, 'the stuck receiver was closed')
  t.equal(app.rooms.stats().connections, 1, 'and left')
  ;(stuck.ws as any)._socket.resume()
  t.equal((await stuck.closed).code, 1013)
  await reader.close()
})

t.test('with compression: a reader recovers a history larger than maxBufferedBytes, in order, without 1013', async (t) => {
  const { app, url } = await compressedServer(t, { history: { size: 40 }, maxBufferedBytes: 256 * 1024 })
  // Hardly compressible: 40 × 48 KB is far more than maxBufferedBytes after deflate too.
  for (let i = 1; i <= 40; i++) await app.rooms.broadcast('h', { type: 'noise', text: randomBytes(36 * 1024).toString('base64') })
  const { epoch } = await app.rooms.history('h', { limit: 0 })
  const reader = await connect(url, { perMessageDeflate: true })
  const ack = await reader.request({ type: 'join', room: 'h', since: { epoch, offset: 0 } }, 'j')
  t.strictSame(ack.data, { recovered: true, epoch, offset: 40 })
  t.same(reader.received.filter((m) => m.type === 'noise').map((m) => m.offset), Array.from({ length: 40 }, (_, i) => i + 1), 'all of it, in order, before the ack')
  t.equal(app.rooms.stats().slowConsumersClosed, 0, 'not taken for a slow consumer')
  await reader.close()
})
