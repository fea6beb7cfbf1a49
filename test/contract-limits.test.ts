// CONTRACT §8: what breaking a limit gets, each through a real socket. Every case also checks
// that the offender's rooms are left and the other connections are still served.
import t from 'tap'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import { closedWithin, join, roundTrip, serve, until, TestClient } from './helpers.js'

const isEvent = (event: string, room?: string) => (m: any) => m?.type === 'system' && m.event === event && (room === undefined || m.room === room)

/** A `message` frame of exactly `bytes` UTF-8 bytes. */
function frameOfSize (room: string, bytes: number): string {
  const empty = JSON.stringify({ type: 'message', room, text: '' })
  const frame = JSON.stringify({ type: 'message', room, text: 'x'.repeat(bytes - empty.length) })
  if (Buffer.byteLength(frame) !== bytes) throw new Error('bad frame size')
  return frame
}

t.test('frame larger than maxPayload: close 1009', async (t) => {
  const s = await serve(t, { maxPayload: 1024 })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  a.send(frameOfSize('r', 1024))
  t.equal((await b.next({ type: 'chat' })).text.length, 1024 - JSON.stringify({ type: 'message', room: 'r', text: '' }).length, 'exactly maxPayload is accepted')
  a.send(frameOfSize('r', 1025))
  t.equal((await closedWithin(a)).code, 1009)
  t.strictSame(await b.next(isEvent('leave')), { type: 'system', event: 'leave', room: 'r', user: a.welcome.user, text: 'User left room' }, 'the others hear the offender left')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }], 'no room leaked')
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'chat').length, 1, 'the oversized frame was not delivered')
})

t.test('binary frame: close 1003', async (t) => {
  const s = await serve(t)
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  a.ws.send(Buffer.from(JSON.stringify({ type: 'message', room: 'r', text: 'binary' })), { binary: true })
  t.equal((await closedWithin(a)).code, 1003)
  await b.next(isEvent('leave'))
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'chat'), [], 'the binary frame was not processed')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
})

t.test('invalid UTF-8: close 1007', async (t) => {
  const s = await serve(t)
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  a.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false })
  t.equal((await closedWithin(a)).code, 1007)
  await b.next(isEvent('leave'))
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  b.send({ type: 'message', room: 'r', text: 'alone' })
  await roundTrip(b)
})

t.test('rateLimit: over max gets rate_limited and is not processed; over 2 × max closes 1008', async (t) => {
  const s = await serve(t, { rateLimit: { max: 5, windowMs: 60_000 } })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r') // frame 1
  await join(b, 'r')
  for (let i = 2; i <= 11; i++) a.send({ type: 'message', room: 'r', text: `m${i}`, id: i })
  for (let i = 2; i <= 5; i++) t.strictSame(await a.next((m) => m.id === i), { type: 'ack', id: i }, `frame ${i} is processed`)
  for (let i = 6; i <= 10; i++) {
    const e = await a.next((m) => m.id === i)
    t.equal(e.type, 'error')
    t.equal(e.code, 'rate_limited', `frame ${i} is rate limited`)
  }
  t.equal((await closedWithin(a)).code, 1008, 'frame 11 (> 2 × max) closes with 1008')
  await b.next(isEvent('leave'))
  const chats = b.received.filter((m) => m.type === 'chat').map((m) => m.text)
  t.same(chats, ['m2', 'm3', 'm4', 'm5'], 'rate-limited frames were not processed')
  // Frames 6–10 refused, and frame 11, refused by closing the connection.
  t.equal(s.app.rooms.stats().rateLimited, 6, 'counted in stats().rateLimited, each refused frame once')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
})

t.test('rateLimit: invalid frames count too', async (t) => {
  const s = await serve(t, { rateLimit: { max: 3, windowMs: 60_000 } })
  const a = await s.open()
  for (let i = 0; i < 7; i++) a.send('garbage')
  t.equal((await closedWithin(a)).code, 1008)
  const codes = a.received.filter((m) => m.type === 'error').map((m) => m.code)
  t.same(codes.slice(0, 6), ['invalid_message', 'invalid_message', 'invalid_message', 'rate_limited', 'rate_limited', 'rate_limited'])
})

t.test('rateLimit: the window is per connection and starts over', async (t) => {
  const s = await serve(t, { rateLimit: { max: 3, windowMs: 300 } })
  const [a, b] = [await s.open(), await s.open()]
  for (let i = 0; i < 3; i++) t.equal((await a.request({ type: 'join', room: `r${i}` })).type, 'ack')
  t.equal((await a.request({ type: 'join', room: 'r3' }, 'over')).code, 'rate_limited')
  t.equal((await b.request({ type: 'join', room: 'b0' })).type, 'ack', 'another connection has its own window')
  // Sleeping only makes the window more certainly over; no assertion depends on how long it took.
  await new Promise((resolve) => setTimeout(resolve, 450))
  t.equal((await a.request({ type: 'join', room: 'r3' })).type, 'ack', 'a new window accepts frames again')
})

t.test('slow receiver: close 1013, others still served', async (t) => {
  const s = await serve(t, { maxBufferedBytes: 64 * 1024, rateLimit: false })
  const [slow, fast, sender] = [await s.open(), await s.open(), await s.open()]
  for (const c of [slow, fast, sender]) await join(c, 'r')
  const socket = (slow.ws as any)._socket
  socket.pause()
  const text = 'y'.repeat(16 * 1024)
  let sent = 0
  // Broadcast until the server gives up on the slow receiver (kernel buffers absorb a few MB first).
  while (s.app.rooms.stats().slowConsumersClosed === 0 && sent < 4000) {
    await s.app.rooms.broadcast('r', { type: 'bulk', n: sent, text })
    sent++
    // One message per turn of the event loop: a reading client drains it before the next.
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(s.app.rooms.stats().slowConsumersClosed, 1, `one slow consumer closed after ${sent} messages`)
  t.strictSame(await fast.next((m) => isEvent('leave')(m) && m.user.id === slow.welcome.user.id, 30_000), {
    type: 'system', event: 'leave', room: 'r', user: slow.welcome.user, text: 'User left room'
  }, 'the others hear the slow receiver left')
  socket.resume()
  t.equal((await closedWithin(slow)).code, 1013)
  t.equal(fast.ws.readyState, WebSocket.OPEN, 'the fast receiver is still connected')
  const last = await fast.next((m) => m.type === 'bulk' && m.n === sent - 1, 30_000)
  t.equal(last.n, sent - 1, 'the fast receiver got every broadcast')
  t.equal(fast.received.filter((m) => m.type === 'bulk').length, sent)
  sender.send({ type: 'message', room: 'r', text: 'after' })
  t.equal((await fast.next({ type: 'chat' })).text, 'after')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 2 }], 'the slow receiver left its rooms')
})

t.test('a burst larger than maxBufferedBytes to a client that reads is not a slow receiver', async (t) => {
  // e.g. replaying history on connect: the client reads everything, it is not too slow.
  const s = await serve(t, { maxBufferedBytes: 64 * 1024 })
  const a = await s.open()
  const conn = s.app.rooms.connection(a.welcome.connectionId)
  const text = 'h'.repeat(8 * 1024)
  for (let i = 0; i < 16; i++) conn?.send({ type: 'history', n: i, text })
  const last = await a.next((m) => m.type === 'history' && m.n === 15)
  t.equal(last.n, 15, 'every history frame arrived')
  await roundTrip(a)
  t.equal(a.ws.readyState, WebSocket.OPEN, 'still connected')
  t.equal(s.app.rooms.stats().slowConsumersClosed, 0, 'not counted as a slow consumer')
})

t.test('idle: a client that answers no ping is terminated, its rooms left', async (t) => {
  const s = await serve(t, { idleTimeout: 1000 })
  const healthy = await s.open()
  const idle = s.track(new TestClient(new WebSocket(s.url, { autoPong: false })))
  const welcome = await idle.next({ event: 'welcome' })
  await join(idle, 'r')
  await join(healthy, 'r')
  const closed = await closedWithin(idle)
  t.equal(closed.code, 1006, 'terminated (no close frame)')
  t.strictSame(await healthy.next(isEvent('leave')), { type: 'system', event: 'leave', room: 'r', user: welcome.user, text: 'User left room' })
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }], 'the idle client left its rooms')
  t.equal(s.app.rooms.stats().connections, 1)
  t.equal(healthy.ws.readyState, WebSocket.OPEN, 'a client that answers pings stays, though it sent no frame either')
  await roundTrip(healthy)
})

t.test('a handler that throws: internal_error, the server and the others go on', async (t) => {
  const s = await serve(t, {}, (app) => {
    app.rooms.handle('crash', Type.Object({}), () => { throw new TypeError('cannot read properties of undefined') })
  })
  const [a, b] = [await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  for (let i = 0; i < 3; i++) {
    const e = await a.request({ type: 'crash' }, `c${i}`)
    t.equal(e.code, 'internal_error')
  }
  t.equal(a.ws.readyState, WebSocket.OPEN, 'the connection stays open')
  a.send({ type: 'message', room: 'r', text: 'fine' })
  t.equal((await b.next({ type: 'chat' })).text, 'fine')
  const c = await s.open()
  t.equal(c.welcome.event, 'welcome', 'new connections are accepted')
})

t.test('a flood of bad input leaks nothing', async (t) => {
  const s = await serve(t, { rateLimit: false, maxRoomsPerConnection: 3 })
  const a = await s.open()
  const frames = ['{', '[]', 'null', '{"type":"join"}', '{"type":"join","room":""}', '{"type":"join","room":"\\u0000"}', '{"type":"leave","room":"x"}', '{"type":"message","room":"x","text":"t"}', '{"__proto__":{"polluted":true},"type":"join","room":"p"}']
  for (let i = 0; i < 20; i++) for (const f of frames) a.send(f)
  for (let i = 0; i < 5; i++) a.send({ type: 'join', room: `ok${i}` })
  await roundTrip(a)
  t.equal(({} as any).polluted, undefined, 'no prototype pollution')
  // The __proto__ frame is refused as invalid, so the first three good joins take the three slots.
  t.same(s.app.rooms.rooms().map((r) => r.room).sort(), ['ok0', 'ok1', 'ok2'], 'the room limit held: the first 3 valid joins, no room from a bad frame')
  a.ws.close(1000)
  await closedWithin(a)
  await until(() => s.app.rooms.stats().connections === 0, 5000, 'cleanup')
  t.same(s.app.rooms.rooms(), [], 'every room left after disconnect')
})
