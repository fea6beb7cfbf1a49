// lib/frame-writer.ts on its own, with fake sockets: the frame bytes (RFC 6455 §5.2, and what
// ws's own Receiver reads from them), the room's TickBatch, one write per socket per tick in the
// exact order of what was queued, and flushNow ahead of a close.
import type { Socket } from 'node:net'
import t from 'tap'
import * as ws from 'ws'
import { type BatchReceiver, corkUntilFlush, flushNow, frameText, holdUntilNextTick, queueBatched, queueFrame, RoomFrame, tickBatch, TickBatch, type TickWriter } from '../../lib/frame-writer.js'

/** ws's frame parser (exported at runtime, not in @types/ws): a client's view, so frames are unmasked. */
interface WsReceiver {
  on (event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void
  on (event: 'error', listener: (err: Error) => void): void
  write (chunk: Buffer, callback: (err?: Error | null) => void): void
}
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => WsReceiver }

/** The text messages ws reads from `bytes`, in order; rejects on anything it refuses. */
function parsedByWs (bytes: Buffer): Promise<string[]> {
  const receiver = new Receiver({ isServer: false })
  const messages: string[] = []
  return new Promise((resolve, reject) => {
    receiver.on('error', reject)
    receiver.on('message', (data, isBinary) => {
      if (isBinary) reject(new Error('a binary message'))
      else messages.push(data.toString())
    })
    receiver.write(bytes, (err) => err ? reject(err) : resolve(messages))
  })
}

/** What the writer hands to: records every write and the cork/uncork calls around them. */
class FakeSocket {
  readonly writes: Buffer[] = []
  readonly calls: string[] = []
  destroyed = false
  writableLength = 0
  write (data: Buffer): boolean {
    this.writes.push(data)
    this.calls.push('write')
    return true
  }

  cork (): void { this.calls.push('cork') }
  uncork (): void { this.calls.push('uncork') }
}

class FakeWriter implements TickWriter {
  readonly fake: FakeSocket | null
  readonly socket: Socket | null
  pending: TickWriter['pending'] = null
  writable = true
  flushes = 0
  constructor (withSocket = true) {
    this.fake = withSocket ? new FakeSocket() : null
    this.socket = this.fake as unknown as Socket | null
  }

  flushed (): void { this.flushes++ }
  get writes (): Buffer[] { return this.fake!.writes }
}

/**
 * Resolves after the writer's end-of-tick flush: queueing scheduled it with setImmediate (no
 * writeDelay is set in this file), and immediates run in the order they were set.
 */
function endOfTick (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** The RFC 6455 header of an unmasked final text frame whose payload is `n` bytes, written out by hand. */
function rfcHeader (n: number): number[] {
  if (n <= 125) return [0x81, n]
  if (n <= 0xffff) return [0x81, 126, n >> 8, n & 0xff]
  const high = Math.floor(n / 2 ** 32)
  return [0x81, 127, ...[high >>> 24, high >>> 16, high >>> 8, high, n >>> 24, n >>> 16, n >>> 8, n].map((b) => b & 0xff)]
}

t.test('frameText: the RFC 6455 header at payload lengths 0, 125, 126, 65535, 65536 (UTF-8 bytes, not characters)', async (t) => {
  const payloads = [
    '', 'a'.repeat(125), 'b'.repeat(126), 'c'.repeat(65535), 'd'.repeat(65536),
    'é'.repeat(63), // 63 characters, 126 bytes: the 16-bit form
    'é'.repeat(32768) // 32768 characters, 65536 bytes: the 64-bit form
  ]
  for (const payload of payloads) {
    const bytes = Buffer.byteLength(payload)
    const frame = frameText(payload)
    const header = rfcHeader(bytes)
    t.strictSame([...frame.subarray(0, header.length)], header, `header for ${bytes} bytes`)
    t.equal(frame.length, header.length + bytes, `nothing after the ${bytes}-byte payload`)
    t.equal(frame.subarray(header.length).toString('utf8'), payload, `the ${bytes}-byte payload follows the header`)
  }
  const parsed = await parsedByWs(Buffer.concat(payloads.map(frameText)))
  t.equal(parsed.length, payloads.length, 'ws reads one text message per frame, back to back')
  t.ok(parsed.every((text, i) => text === payloads[i]), 'each exactly its payload')
})

t.test('TickBatch.bytes: a lone frame as it is, the whole batch joined once, a run as a view, regrown after a late add', async (t) => {
  const batch = new TickBatch()
  const frames = ['a', 'bb', 'ccc'].map(frameText)
  t.strictSame(frames.map((f) => batch.add(f)), [0, 1, 2], 'add returns the frame\'s index')
  t.equal(batch.bytes(1, 2), frames[1], 'one frame: that very Buffer')

  const whole = batch.bytes(0, 3)
  t.strictSame(whole, Buffer.concat(frames))
  t.equal(batch.bytes(0, 3), whole, 'joined once: the same Buffer again')
  const run = batch.bytes(1, 3)
  t.strictSame(run, Buffer.concat(frames.slice(1)))
  t.ok(run.buffer === whole.buffer && run.byteOffset === whole.byteOffset + frames[0].length, 'a run is a view of the joined Buffer, not a copy')

  const late = frameText('dddd')
  t.equal(batch.add(late), 3)
  t.strictSame(batch.bytes(0, 4), Buffer.concat([...frames, late]), 'the whole batch includes the late frame')
  t.strictSame(batch.bytes(1, 3), Buffer.concat(frames.slice(1)), 'earlier runs still cover the same frames')
  t.strictSame(batch.bytes(2, 4), Buffer.concat([frames[2], late]), 'a run that ends with the late frame')
})

t.test('a room\'s frames reach each member in one write per tick, the same Buffer for every member', async (t) => {
  const room = new Set<string>()
  const members = [new FakeWriter(), new FakeWriter(), new FakeWriter()]
  const batch = tickBatch(room)
  t.equal(tickBatch(room), batch, 'one batch per room per tick')
  const payloads = ['{"n":1}', '{"n":2}', '{"n":3}']
  for (const payload of payloads) {
    const index = batch.add(frameText(payload))
    for (const member of members) queueBatched(member, batch, index)
  }
  t.strictSame(members.map((m) => m.writes.length), [0, 0, 0], 'nothing is written before the tick ends')
  await endOfTick()
  t.strictSame(members.map((m) => m.writes.length), [1, 1, 1], 'one write each')
  t.strictSame(members.map((m) => m.flushes), [1, 1, 1], 'each writer is told once that its output went out')
  t.ok(members.every((m) => m.writes[0] === members[0].writes[0]), 'the very same Buffer for every member')
  t.strictSame(await parsedByWs(members[0].writes[0]), payloads)

  const next = tickBatch(room)
  t.not(next, batch, 'the next tick has a batch of its own')
  const index = next.add(frameText('{"n":4}'))
  for (const member of members) queueBatched(member, next, index)
  await endOfTick()
  t.strictSame(members.map((m) => m.writes.length), [2, 2, 2], 'one more write each in the next tick')
  t.strictSame(await parsedByWs(members[2].writes[1]), ['{"n":4}'], 'holding only that tick\'s frame')
})

t.test('acks and other rooms\' frames between a room\'s frames keep their exact order, still in one write', async (t) => {
  const a = new FakeWriter() // in both rooms, gets acks in between
  const b = new FakeWriter() // in room r only, from its first frame
  const c = new FakeWriter() // in room r only, from its second frame
  const d = new FakeWriter() // in both rooms: its frame of s has the index at which its run of r ends
  const r = tickBatch(new Set<string>())
  const s = tickBatch(new Set<string>())
  const toRoom = (batch: TickBatch, payload: string, writers: FakeWriter[]) => {
    const index = batch.add(frameText(payload))
    for (const w of writers) queueBatched(w, batch, index)
  }
  toRoom(r, 'r0', [a, b, d])
  queueFrame(a, frameText('ack1'))
  toRoom(s, 's0', [a])
  toRoom(s, 's1', [d])
  toRoom(r, 'r1', [a, b, c])
  toRoom(r, 'r2', [a, b, c])
  queueFrame(a, frameText('ack2'))
  await endOfTick()
  t.strictSame([a, b, c, d].map((w) => w.writes.length), [1, 1, 1, 1], 'one write per member')
  t.strictSame(await parsedByWs(a.writes[0]), ['r0', 'ack1', 's0', 'r1', 'r2', 'ack2'], 'exactly the order queued')
  t.strictSame(await parsedByWs(b.writes[0]), ['r0', 'r1', 'r2'])
  t.equal(b.writes[0], r.bytes(0, 3), 'the whole run is the room\'s joined Buffer')
  t.strictSame(await parsedByWs(c.writes[0]), ['r1', 'r2'], 'a member that joined mid-tick gets its part of the run')
  t.strictSame(await parsedByWs(d.writes[0]), ['r0', 's1'], 'a run of one room does not run on into another room\'s frames')
})

t.test('flushNow writes what is queued at once, before a close frame; the tick\'s end does not write it again', async (t) => {
  const closing = new FakeWriter()
  const staying = new FakeWriter()
  const batch = tickBatch(new Set<string>())
  const index = batch.add(frameText('room'))
  queueBatched(closing, batch, index)
  queueBatched(staying, batch, index)
  queueFrame(closing, frameText('ack'))

  flushNow(closing)
  t.equal(closing.writes.length, 1, 'written at once')
  t.strictSame(await parsedByWs(closing.writes[0]), ['room', 'ack'])
  const closeFrame = Buffer.from([0x88, 0x02, 0x03, 0xe8]) // what ws writes next: close 1000
  closing.fake!.write(closeFrame)
  closing.writable = false

  flushNow(staying)
  queueFrame(staying, frameText('later'))
  await endOfTick()
  t.strictSame(closing.writes, [closing.writes[0], closeFrame], 'nothing after the close frame')
  t.equal(staying.writes.length, 2)
  t.strictSame(await parsedByWs(Buffer.concat(staying.writes)), ['room', 'later'], 'what was queued after flushNow goes at the tick\'s end, in order')
})

t.test('a writer that may not write, or whose socket is gone, gets nothing but is still told the tick ended', async (t) => {
  const closed = new FakeWriter()
  closed.writable = false
  const destroyed = new FakeWriter()
  destroyed.fake!.destroyed = true
  const deflate = new FakeWriter(false) // frames went through ws.send: no socket of ours
  queueFrame(closed, frameText('x'))
  queueFrame(destroyed, frameText('y'))
  holdUntilNextTick(deflate)
  await endOfTick()
  t.strictSame([closed.writes.length, destroyed.writes.length], [0, 0])
  t.strictSame([closed.flushes, destroyed.flushes, deflate.flushes], [1, 1, 1])
})

t.test('corkUntilFlush: an upgraded socket stays corked until its first frames are written', async (t) => {
  const upgraded = new FakeWriter()
  corkUntilFlush(upgraded.socket)
  corkUntilFlush(upgraded.socket)
  queueFrame(upgraded, frameText('welcome'))
  t.strictSame(upgraded.fake!.calls, ['cork'], 'corked once')
  await endOfTick()
  t.strictSame(upgraded.fake!.calls, ['cork', 'write', 'uncork'], 'the welcome is written, then the socket uncorked')
})

t.test('RoomFrame frames a room message once for N receivers', async (t) => {
  const room = new Set<string>() // what stands for the room during the tick
  const got: Array<{ batch: TickBatch, index: number, payload: string }> = []
  const receiver: BatchReceiver = { deliverBatched: (batch, index, payload) => { got.push({ batch, index, payload }) } }
  const first = new RoomFrame(room, '{"type":"chat","text":"one"}')
  const second = new RoomFrame(room, '{"type":"chat","text":"two"}')
  const unsent = new RoomFrame(room, '{"type":"chat","text":"nobody"}') // a room message no member receives
  for (let i = 0; i < 3; i++) first.to(receiver)
  for (let i = 0; i < 3; i++) second.to(receiver)
  const batch = got[0].batch
  t.ok(got.every((d) => d.batch === batch), 'every receiver gets the room\'s one batch of the tick')
  t.same(got.map((d) => d.index), [0, 0, 0, 1, 1, 1], 'each message at one index, the same for all its receivers')
  t.equal(batch.frames.length, 2, 'framed once per message, not per receiver; a message nobody receives is not framed')
  unsent.to(receiver)
  t.same([batch.frames.length, got.at(-1)?.index], [3, 2], 'until it has a receiver: then it is framed, at the next index')
  t.same(await parsedByWs(batch.bytes(0, 3)), ['{"type":"chat","text":"one"}', '{"type":"chat","text":"two"}', '{"type":"chat","text":"nobody"}'], 'the frames, in order, as ws reads them')
  await endOfTick()
  const next: typeof got = []
  new RoomFrame(room, '{"type":"chat","text":"three"}').to({ deliverBatched: (batch, index, payload) => { next.push({ batch, index, payload }) } })
  t.not(next[0].batch.frames, batch.frames, 'the next tick starts a new batch')
  t.equal(next[0].index, 0)
})
