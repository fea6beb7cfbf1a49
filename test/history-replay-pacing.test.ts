// A join with `since` used to queue every kept message it recovered at once, and every such join
// of one read too: a client that did not read grew the server's buffers far past maxBufferedBytes
// (4 rooms × 50 × 60 KB: 23 MiB), and one that read was closed with 1013 for a catch-up it was
// taking. The catch-up now goes out as the socket drains: what the server holds unsent for a
// connection stays within maxBufferedBytes, a reader recovers everything, and each message still
// reaches the joiner once, in order, before the ack or after it.
import t from 'tap'
import type { Socket } from 'node:net'
import type WebSocket from 'ws'
import { closedWithin, serve, until, type Fixture, type TestClient } from './helpers.js'

const MAX_BUFFERED = 1_048_576 // the default maxBufferedBytes
const body = 'x'.repeat(60_000)
const isBulk = (m: any): boolean => m.type === 'bulk'

/** `count` messages of about 60 KB in `room`; resolves with the room's epoch. */
async function fill (s: Fixture, room: string, count: number): Promise<string> {
  for (let i = 1; i <= count; i++) await s.app.rooms.broadcast(room, { type: 'bulk', i, body })
  return (await s.app.rooms.history(room, { limit: 0 })).epoch
}

/**
 * The server's socket of a client, with the most bytes it ever held unsent right after a write
 * (what the kernel did not take at once): the server's own buffer for that connection.
 */
function watchServerSocket (s: Fixture, client: TestClient & { welcome: any }): { socket: Socket, most: () => number } {
  const conn = s.app.rooms.connection(client.welcome.connectionId) as unknown as { socket: Socket }
  const socket = conn.socket
  let most = 0
  const write = socket.write
  socket.write = function (this: Socket, ...args: any[]) {
    const result = (write as (...a: any[]) => boolean).apply(this, args)
    most = Math.max(most, socket.writableLength)
    return result
  } as typeof socket.write
  return { socket, most: () => most }
}

/** Send frames so that they leave in one TCP write (and reach the server in one read). */
function sendTogether (client: TestClient, frames: unknown[]): void {
  const socket = (client.ws as WebSocket & { _socket: Socket })._socket
  socket.cork()
  for (const frame of frames) client.send(frame)
  socket.uncork()
}

/** The bulk messages of `room` and the ack of join `id`, in arrival order, as offsets and 'ack'. */
function arrivals (client: TestClient, room: string, id: string): Array<number | 'ack'> {
  return client.received
    .filter((m) => (isBulk(m) && m.room === room) || (m.type === 'ack' && m.id === id))
    .map((m) => m.type === 'ack' ? 'ack' : m.offset)
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('a client that stops reading and recovers several big rooms: the server holds at most maxBufferedBytes for it', async (t) => {
  const rooms = ['h1', 'h2', 'h3', 'h4']
  const s = await serve(t, { history: { size: 100 }, rateLimit: false })
  const epochs: string[] = []
  for (const room of rooms) epochs.push(await fill(s, room, 100)) // 6 MB each
  const client = await s.open()
  const server = watchServerSocket(s, client)

  client.ws.pause()
  sendTogether(client, rooms.map((room, i) => ({ type: 'join', room, id: room, since: { epoch: epochs[i], offset: 0 } })))
  // The kernel's buffers are full: the server holds what is left, or stopped queuing.
  await until(() => server.socket.writableLength > 0, 10_000, 'the server to hold unsent bytes')
  t.ok(server.most() <= MAX_BUFFERED, `while the client does not read, at most maxBufferedBytes unsent (${server.most()})`)
  t.equal(s.app.rooms.stats().slowConsumersClosed, 0, 'and it is kept, not closed as slow')

  client.ws.resume()
  const acks: any[] = []
  for (const room of rooms) acks.push(await client.next((m) => m.type === 'ack' && m.id === room, 20_000))
  t.strictSame(acks.map((a) => a.data), rooms.map((_room, i) => ({ recovered: true, epoch: epochs[i], offset: 100 })), 'every join recovered')
  for (const room of rooms) t.same(arrivals(client, room, room), [...range(1, 100), 'ack'], `${room}: all 100, in order, before its ack`)
  t.ok(server.most() <= MAX_BUFFERED, `and as it reads, still at most maxBufferedBytes unsent (${server.most()})`)
})

t.test('a client that reads recovers 100 × 60 KB with the default maxBufferedBytes, in order, without 1013', async (t) => {
  const s = await serve(t, { history: { size: 100 } })
  const epoch = await fill(s, 'h', 100)
  const client = await s.open()
  const ack = await client.request({ type: 'join', room: 'h', since: { epoch, offset: 0 } }, 'j')
  t.strictSame(ack.data, { recovered: true, epoch, offset: 100 })
  t.same(arrivals(client, 'h', 'j'), [...range(1, 100), 'ack'], 'all 100, in order, before the ack')
  t.ok(client.received.filter(isBulk).every((m) => m.body === body), 'each one whole')
  t.equal(s.app.rooms.stats().slowConsumersClosed, 0, 'not taken for a slow consumer')
  t.equal((await client.request({ type: 'leave', room: 'h' })).type, 'ack', 'the connection goes on')
})

t.test('messages published while a catch-up waits for the socket reach the joiner once, in order', async (t) => {
  const s = await serve(t, { history: { size: 200 }, rateLimit: false })
  const epoch = await fill(s, 'h', 100)
  const publisher = await s.open()
  await publisher.request({ type: 'join', room: 'h' })
  const client = await s.open()
  const server = watchServerSocket(s, client)

  client.ws.pause()
  client.send({ type: 'join', room: 'h', id: 'j', since: { epoch, offset: 0 } })
  await until(() => server.socket.writableLength > 0, 10_000, 'the catch-up to wait for the socket')
  // Published during the join: a chat and two broadcasts (offsets 101..103).
  t.equal((await publisher.request({ type: 'message', room: 'h', text: 'live' })).data.offset, 101)
  await s.app.rooms.broadcast('h', { type: 'bulk', i: 102, body: 'small' })
  await s.app.rooms.broadcast('h', { type: 'bulk', i: 103, body: 'small' })
  client.ws.resume()

  const ack = await client.next((m) => m.type === 'ack' && m.id === 'j', 20_000)
  t.equal(ack.data.recovered, true)
  await s.app.rooms.broadcast('h', { type: 'bulk', i: 104, body: 'after' })
  await client.next((m) => isBulk(m) && m.i === 104)
  const seen = client.received.filter((m) => (m.room === 'h' && typeof m.offset === 'number') || m.id === 'j').map((m) => m.type === 'ack' ? 'ack' : m.offset)
  const ackAt = seen.indexOf('ack')
  t.same(seen.filter((o) => o !== 'ack'), range(1, 104), 'every offset once, in order')
  t.same(seen.slice(0, ackAt), range(1, ack.data.offset), 'before the ack: everything up to the offset it names')
  t.ok(ack.data.offset >= 100, `the ack names the last offset sent (${ack.data.offset})`)
})

t.test('a joiner that does not read while its room is busy is closed with 1013, not given a growing buffer', async (t) => {
  const s = await serve(t, { history: { size: 100 }, rateLimit: false })
  const epoch = await fill(s, 'h', 100)
  const client = await s.open()
  const server = watchServerSocket(s, client)

  client.ws.pause()
  client.send({ type: 'join', room: 'h', id: 'j', since: { epoch, offset: 0 } })
  await until(() => server.socket.writableLength > 0, 10_000, 'the catch-up to wait for the socket')
  // Live messages wait for the joiner's ack; past maxBufferedBytes with its unsent bytes, it is slow.
  for (let i = 0; i < 40 && s.app.rooms.stats().slowConsumersClosed === 0; i++) await s.app.rooms.broadcast('h', { type: 'bulk', i, body })
  t.equal(s.app.rooms.stats().slowConsumersClosed, 1, 'closed as a slow consumer')
  t.ok(server.most() <= MAX_BUFFERED, `at most maxBufferedBytes unsent meanwhile (${server.most()})`)
  client.ws.resume()
  t.equal((await closedWithin(client)).code, 1013)
})
