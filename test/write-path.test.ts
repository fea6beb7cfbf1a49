// The write path sends each socket's frames of one event-loop turn in one write: a room's frames
// of the turn are joined once and shared by the members that got all of them, the others get
// their own concatenation. These tests put many frames into one turn (the client's frames leave
// in one TCP write, or the server makes its calls in one synchronous block) and check, through
// real sockets, that every connection still gets exactly its frames in their order.
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import type WebSocket from 'ws'
import wsRooms from '../lib/index.js'
import { closedWithin, connect, join, serve, type TestClient } from './helpers.js'
import { encodeFrame, RawClient } from './raw-client.js'

/** Send frames so that they leave in one TCP write (and reach the server in one read). */
function sendTogether (client: TestClient, frames: unknown[]): void {
  const socket = (client.ws as WebSocket & { _socket: import('node:net').Socket })._socket
  socket.cork()
  for (const frame of frames) client.send(frame)
  socket.uncork()
}

/** Wait until `client` got `count` frames matching `match`, and return them in arrival order. */
async function collect (client: TestClient, match: (m: any) => boolean, count: number): Promise<any[]> {
  const got = []
  for (let i = 0; i < count; i++) got.push(await client.next(match))
  return got
}

const chat = (m: any): boolean => m.type === 'chat'
const reply = (m: any): boolean => m.type === 'ack' || m.type === 'error'

t.test('interleaved rooms, acks and errors in one turn: each connection gets its own frames, in order', async (t) => {
  const { open } = await serve(t, { rateLimit: false })
  const publisher = await open()
  const both = await open() // in r1 and r2: its frames of the turn interleave two rooms
  const onlyR1 = await open()
  const onlyR2 = await open()
  for (const c of [publisher, both]) { await join(c, 'r1'); await join(c, 'r2') }
  await join(onlyR1, 'r1')
  await join(onlyR2, 'r2')

  // One burst: chats to two rooms, a room the publisher is not in (error), a frame that is not
  // an envelope (error), each with the ack or error in between.
  const frames: unknown[] = []
  const expected: Array<{ room: string, text: string }> = []
  const replies: Array<{ type: string, id: number }> = []
  for (let i = 0; i < 60; i++) {
    if (i % 7 === 3) {
      frames.push({ type: 'message', room: 'elsewhere', text: `x${i}`, id: i })
      replies.push({ type: 'error', id: i })
    } else if (i % 11 === 5) {
      frames.push({ type: 'no-such-type', id: i })
      replies.push({ type: 'error', id: i })
    } else {
      const room = i % 3 === 0 ? 'r2' : 'r1'
      frames.push({ type: 'message', room, text: `m${i}`, id: i })
      expected.push({ room, text: `m${i}` })
      replies.push({ type: 'ack', id: i })
    }
  }
  sendTogether(publisher, frames)

  const ofRoom = (room: string) => expected.filter((e) => e.room === room)
  const seen = (list: any[]) => list.map((m) => ({ room: m.room, text: m.text }))
  t.same(seen(await collect(both, chat, expected.length)), expected, 'a member of both rooms: both rooms interleaved in publishing order')
  t.same(seen(await collect(onlyR1, chat, ofRoom('r1').length)), ofRoom('r1'), 'r1 only: its room in order')
  t.same(seen(await collect(onlyR2, chat, ofRoom('r2').length)), ofRoom('r2'), 'r2 only: its room in order')
  const answers = await collect(publisher, reply, replies.length)
  t.same(answers.map((m) => ({ type: m.type, id: m.id })), replies, 'the publisher: every ack and error, in the order of its frames')
  t.same(publisher.pending().filter(chat), [], 'the publisher got none of its own chats')
})

t.test('a member that joins in the middle of a turn gets exactly the frames after its join', async (t) => {
  const late = { id: '' }
  const { open } = await serve(t, { rateLimit: false }, (app) => {
    // A server-side join between two broadcasts of the same turn (synchronous: the membership
    // is added before join() returns its promise, and the frames after it are handled in this turn).
    app.rooms.handle('add-late', Type.Object({}), () => { app.rooms.join(late.id, 'r').catch(() => {}) })
  })
  const publisher = await open()
  const early = await open()
  const lateClient = await open()
  late.id = lateClient.welcome.connectionId
  await join(publisher, 'r')
  await join(early, 'r')
  const frames: unknown[] = []
  for (let i = 0; i < 10; i++) frames.push({ type: 'message', room: 'r', text: `before${i}` })
  frames.push({ type: 'add-late', id: 'j' })
  for (let i = 0; i < 10; i++) frames.push({ type: 'message', room: 'r', text: `after${i}` })
  sendTogether(publisher, frames)

  const texts = (list: any[]) => list.map((m) => m.text)
  const all = [...Array.from({ length: 10 }, (_, i) => `before${i}`), ...Array.from({ length: 10 }, (_, i) => `after${i}`)]
  t.same(texts(await collect(early, chat, 20)), all, 'a member from the start: all of them')
  t.same(texts(await collect(lateClient, chat, 10)), all.slice(10), 'the late member: only those after its join, in order')
  await publisher.next({ type: 'ack', id: 'j' })
  t.same(lateClient.pending().filter(chat), [], 'and nothing else')
})

t.test('server calls in one synchronous block (room, user, everyone) reach each connection in call order', async (t) => {
  const { app, open } = await serve(t)
  const a = await open()
  const b = await open()
  await join(a, 'r1')
  await join(a, 'r2')
  await join(b, 'r1')
  const userA = a.welcome.user.id
  const calls: Array<Promise<void>> = []
  const expectA: number[] = []
  const expectB: number[] = []
  for (let i = 0; i < 40; i++) {
    const kind = i % 4
    if (kind === 0) { calls.push(app.rooms.broadcast('r1', { type: 'n', i })); expectA.push(i); expectB.push(i) }
    if (kind === 1) { calls.push(app.rooms.broadcast('r2', { type: 'n', i })); expectA.push(i) }
    if (kind === 2) { calls.push(app.rooms.sendToUser(userA, { type: 'n', i })); expectA.push(i) }
    if (kind === 3) { calls.push(app.rooms.broadcastAll({ type: 'n', i })); expectA.push(i); expectB.push(i) }
  }
  await Promise.all(calls)
  const isN = (m: any): boolean => m.type === 'n'
  t.same((await collect(a, isN, expectA.length)).map((m) => m.i), expectA, 'a (two rooms, its user, everyone): in call order')
  t.same((await collect(b, isN, expectB.length)).map((m) => m.i), expectB, 'b (one room, everyone): in call order')
})

t.test('frames queued in a turn go out before a close frame in that turn', async (t) => {
  t.test('rate limit: acks, then rate_limited errors, then close 1008', async (t) => {
    const { open } = await serve(t, { rateLimit: { max: 3, windowMs: 60_000 } })
    const flooder = await open()
    const other = await open()
    await join(other, 'r')
    await join(flooder, 'r') // frame 1 of 3 in the window
    const frames = []
    for (let i = 0; i < 6; i++) frames.push({ type: 'message', room: 'r', text: `m${i}`, id: i })
    sendTogether(flooder, frames)
    const closed = await closedWithin(flooder)
    t.equal(closed.code, 1008)
    const replies = flooder.received.filter(reply).map((m) => `${m.type}:${m.code ?? ''}:${m.id}`)
    // Frames 2 and 3 are within max; 4..6 are over it; the 7th frame (over 2 × max) closes.
    t.same(replies.slice(-5), ['ack::0', 'ack::1', 'error:rate_limited:2', 'error:rate_limited:3', 'error:rate_limited:4'],
      'every reply of the turn arrived before the close')
    t.same((await collect(other, chat, 2)).map((m) => m.text), ['m0', 'm1'])
  })

  t.test('a frame over maxPayload after a chat in the same read: the ack, then close 1009 (ws writes that close)', async (t) => {
    const { port, open } = await serve(t, { maxPayload: 1024 })
    const other = await open()
    await join(other, 'r')
    const raw = await RawClient.connect(port)
    t.teardown(() => raw.socket.destroy())
    await raw.nextJson((m) => m.event === 'welcome')
    raw.sendText(JSON.stringify({ type: 'join', room: 'r', id: 'j' }))
    await raw.nextJson((m) => m.type === 'ack' && m.id === 'j')
    const chatFrame = JSON.stringify({ type: 'message', room: 'r', text: 'last words', id: 'c' })
    raw.send(Buffer.concat([encodeFrame({ opcode: 1, payload: chatFrame }), encodeFrame({ opcode: 1, payload: 'x'.repeat(2048) })]))
    t.same(await raw.nextJson((m) => m.type === 'ack'), { type: 'ack', id: 'c' }, 'the ack of the chat arrived')
    const close = await raw.closeFrame()
    t.equal(close.code, 1009, 'then the close')
    t.equal((await other.next(chat)).text, 'last words')
  })
})

t.test('a receiver that does not read is closed with 1013; the room goes on, in order', async (t) => {
  const { app, open } = await serve(t, { maxBufferedBytes: 64 * 1024, rateLimit: false })
  const publisher = await open()
  const reader = await open()
  const stuck = await open()
  for (const c of [publisher, reader, stuck]) await join(c, 'r')
  ;(stuck.ws as WebSocket & { _socket: import('node:net').Socket })._socket.pause()
  const text = 'y'.repeat(2000)
  let sent = 0
  // Bursts of 20 chats in one turn each, paced by the reader, until the stuck receiver is closed.
  while (app.rooms.stats().slowConsumersClosed === 0 && sent < 4000) {
    const frames = []
    for (let i = 0; i < 20; i++) frames.push({ type: 'message', room: 'r', text: `${sent + i}:${text}` })
    sendTogether(publisher, frames)
    sent += 20
    await reader.next((m) => m.type === 'chat' && m.text.startsWith(`${sent - 1}:`))
  }
  t.equal(app.rooms.stats().slowConsumersClosed, 1, 'the stuck receiver was closed')
  t.same(app.rooms.rooms(), [{ room: 'r', size: 2 }], 'and left the room')
  const order = reader.received.filter(chat).map((m) => Number(m.text.split(':')[0]))
  t.same(order, Array.from({ length: sent }, (_, i) => i), 'the reader got every chat, in order')
  ;(stuck.ws as WebSocket & { _socket: import('node:net').Socket })._socket.resume()
  t.equal((await closedWithin(stuck)).code, 1013)
  const stuckOrder = stuck.received.filter(chat).map((m) => Number(m.text.split(':')[0]))
  t.same(stuckOrder, Array.from({ length: stuckOrder.length }, (_, i) => i), 'what the stuck receiver got before its close is a prefix, in order')
})

t.test('compressed and plain members of one room, in one turn: the same frames in the same order', async (t) => {
  const app = Fastify()
  await app.register(websocket, { options: { perMessageDeflate: { threshold: 0 } } })
  await app.register(wsRooms, { rateLimit: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
  const publisher = await connect(url)
  const compressed = await connect(url, { perMessageDeflate: true })
  const plain = await connect(url, { perMessageDeflate: false })
  t.match(compressed.ws.extensions, /permessage-deflate/, 'compression negotiated for one')
  t.equal(plain.ws.extensions, '', 'and not for the other')
  for (const c of [publisher, compressed, plain]) { await join(c, 'r1'); await join(c, 'r2') }
  const frames = []
  const expected = []
  for (let i = 0; i < 50; i++) {
    const room = i % 2 === 0 ? 'r1' : 'r2'
    frames.push({ type: 'message', room, text: `m${i}`, id: i })
    expected.push(`${room}:m${i}`)
  }
  sendTogether(publisher, frames)
  const seen = (list: any[]) => list.map((m) => `${m.room}:${m.text}`)
  t.same(seen(await collect(compressed, chat, 50)), expected, 'compressed member')
  t.same(seen(await collect(plain, chat, 50)), expected, 'plain member')
  t.same((await collect(publisher, reply, 50)).map((m) => m.id), Array.from({ length: 50 }, (_, i) => i), 'acks in order')
  for (const c of [publisher, compressed, plain]) await c.close()
})

t.test('writeDelay under load: bursts to many receivers across many turns arrive complete and in order', async (t) => {
  // 1 ms, so that a flush to this many sockets on a test machine often takes at least that long
  // and the next flush waits: either way every receiver must get every frame once, in order.
  const { open } = await serve(t, { rateLimit: false, writeDelay: 1, maxConnectionsPerIp: 0 })
  const publisher = await open()
  await join(publisher, 'big')
  const receivers: TestClient[] = []
  for (let i = 0; i < 150; i++) {
    const c = await open()
    await join(c, 'big')
    receivers.push(c)
  }
  const sent: string[] = []
  for (let burst = 0; burst < 8; burst++) {
    const frames: unknown[] = []
    for (let i = 0; i < 25; i++) {
      const text = `b${burst}-${i}`
      frames.push({ type: 'message', room: 'big', text })
      sent.push(text)
    }
    sendTogether(publisher, frames)
    await new Promise((resolve) => setImmediate(resolve))
  }
  for (const [i, c] of receivers.entries()) {
    const got = (await collect(c, chat, sent.length)).map((m) => m.text)
    if (i === 0 || i === receivers.length - 1) t.same(got, sent, `receiver ${i}: all ${sent.length} frames, in publishing order`)
    else if (JSON.stringify(got) !== JSON.stringify(sent)) t.fail(`receiver ${i} got another sequence`)
  }
  t.same(receivers.flatMap((c) => c.pending().filter(chat)), [], 'and no frame twice')
})

t.test('writeDelay must be an integer from 0 to 100, named when it is not', async (t) => {
  for (const writeDelay of [-1, 101, 1.5]) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(wsRooms, { writeDelay }) }, /writeDelay/, `writeDelay ${writeDelay} is refused`)
    await app.close().catch(() => {})
  }
})
