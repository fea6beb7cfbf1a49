// The fan-out write path: one write per socket per tick. A server frame is unmasked, so one
// framed Buffer serves every receiver. The frames a room sends within a tick are collected in
// order (a TickBatch); a receiver whose output of the tick is a run of that batch gets the run
// as one Buffer at the end of the tick: the same Buffer for every member that got all of it.
// Receivers with other frames in between (acks, errors, other rooms) get their own
// concatenation, in their exact order. Node's stream machinery then runs once per socket per
// tick instead of once per frame. A "tick" is one turn of the event loop (flushed in
// setImmediate, after the poll phase): the frames that every socket read in that turn caused
// leave together, so a write carries more of them (the write system call is most of the cost).
// Under load, one more step (writeDelay): when the last flush itself took at least writeDelay
// ms and new frames come less than writeDelay ms after it ended, the loop is busy writing, and
// the next flush waits writeDelay ms instead of one turn, so the frames that arrive meanwhile
// share the writes. An idle server, or the first frames after a pause, still flush every turn.
import type { Socket } from 'node:net'

/** A complete, unmasked WebSocket text frame (RFC 6455 §5.2: FIN + opcode 1, then the length) in one Buffer. */
export function frameText (payload: string): Buffer {
  // ws's Sender.frame returns the header and the payload as two Buffers; one is cheaper to share and join.
  const length = Buffer.byteLength(payload, 'utf8')
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
  frame.write(payload, headerLength, 'utf8')
  return frame
}

/** The frames one room sent in this tick, in order. Joined once, when a receiver needs more than one. */
export class TickBatch {
  readonly frames: Buffer[] = []
  private joined: Buffer | null = null
  /** Where frame i starts in `joined` (offsets[frames.length] is its length). */
  private offsets: number[] = [0]
  private joinedCount = 0

  /** Add a frame; returns its index in the batch. */
  add (frame: Buffer): number {
    return this.frames.push(frame) - 1
  }

  /** Frames [start, end) as one Buffer: `joined` itself when that is all of them, else a view of it. */
  bytes (start: number, end: number): Buffer {
    if (end - start === 1) return this.frames[start]
    // Frames may still be added while the tick's writes go out (a slow receiver's close sends
    // `leave` to its rooms): join again when the batch grew.
    if (this.joinedCount !== this.frames.length) this.join()
    const joined = this.joined!
    return start === 0 && end === this.joinedCount ? joined : joined.subarray(this.offsets[start], this.offsets[end])
  }

  private join (): void {
    const frames = this.frames
    const offsets = this.offsets
    for (let i = this.joinedCount; i < frames.length; i++) offsets.push(offsets[i] + frames[i].length)
    this.joined = Buffer.concat(frames, offsets[frames.length])
    this.joinedCount = frames.length
  }
}

/** A receiver of a room's frames: Connection (declared here so this file imports no connection.ts). */
export interface BatchReceiver {
  deliverBatched (batch: TickBatch, index: number, payload: string): void
}

/**
 * One message to a room's local members, the body of every fan-out loop (live delivery and a
 * history room's stream): framed once, on the first receiver, into the room's batch of this tick;
 * each receiver then queues that same frame. No receiver, no framing.
 */
export class RoomFrame {
  private readonly key: object
  private readonly payload: string
  private batch: TickBatch | null = null
  private index = 0

  /** `key`: what stands for the room during the tick (its member Set), shared by all its deliveries. */
  constructor (key: object, payload: string) {
    this.key = key
    this.payload = payload
  }

  to (receiver: BatchReceiver): void {
    let batch = this.batch
    if (batch === null) {
      batch = this.batch = tickBatch(this.key)
      this.index = batch.add(frameText(this.payload))
    }
    receiver.deliverBatched(batch, this.index, this.payload)
  }
}

/** One writer's output of this tick, reused from tick to tick. */
class PendingOutput {
  writer: TickWriter | null = null
  /** The open run: frames [start, end) of `batch`; batch is null when there is none. */
  batch: TickBatch | null = null
  start = 0
  end = 0
  /** Earlier output, in order, when it is not one run (frames of runs that were broken, single frames). */
  readonly parts: Buffer[] = []
}

/**
 * A connection's side of the write path. `socket` is null when frames go through ws.send
 * (permessage-deflate): nothing is queued here, but the end-of-tick look still happens.
 */
export interface TickWriter {
  readonly socket: Socket | null
  /** This tick's output; null when nothing is queued. */
  pending: PendingOutput | null
  /** False once nothing more may be written (a close frame went out, the socket is gone). */
  readonly writable: boolean
  /** Called once per tick after the writer's output was handed to the socket. */
  flushed (): void
}

let queue: PendingOutput[] = []
let queued = 0
let flushing: PendingOutput[] = []
let flushScheduled = false
/** writeDelay of each registered plugin instance: the writer, shared by the process, uses the smallest. */
const writeDelays: number[] = []
let writeDelay = 0
/** How long the last flush took (ms), and when it ended: the load signal for writeDelay. */
let lastFlushMs = 0
let lastFlushEnd = 0
/** This tick's batch per room (keyed by its member set), started afresh every tick. */
const batches = new Map<object, TickBatch>()
/** Sockets corked by an accepted upgrade: uncorked once their first frames are written. */
const upgradeCorked = new Set<Socket>()

function scheduleFlush (): void {
  if (flushScheduled) return
  flushScheduled = true
  // Busy: the last flush was long, and these frames came right after it (not after a pause).
  if (writeDelay > 0 && lastFlushMs >= writeDelay && performance.now() - lastFlushEnd < writeDelay) setTimeout(flush, writeDelay)
  else setImmediate(flush)
}

/** A plugin instance's writeDelay (ms, 0 = flush every turn); returns what removes it again. */
export function useWriteDelay (ms: number): () => void {
  writeDelays.push(ms)
  writeDelay = Math.min(...writeDelays)
  return () => {
    writeDelays.splice(writeDelays.indexOf(ms), 1)
    writeDelay = writeDelays.length === 0 ? 0 : Math.min(...writeDelays)
  }
}

/** This tick's batch for a room (`key` is anything that stands for the room during the tick). */
export function tickBatch (key: object): TickBatch {
  let batch = batches.get(key)
  if (batch === undefined) {
    batch = new TickBatch()
    batches.set(key, batch)
    scheduleFlush()
  }
  return batch
}

function enqueue (writer: TickWriter): PendingOutput {
  let out = queue[queued]
  if (out === undefined) {
    out = new PendingOutput()
    queue.push(out)
  }
  queued++
  out.writer = writer
  writer.pending = out
  scheduleFlush()
  return out
}

/** Move the open run into `parts` (the writer's output is no longer one run). */
function closeRun (out: PendingOutput): void {
  const batch = out.batch
  if (batch === null) return
  for (let i = out.start; i < out.end; i++) out.parts.push(batch.frames[i])
  out.batch = null
}

/** Queue frame `index` of `batch` for this writer. */
export function queueBatched (writer: TickWriter, batch: TickBatch, index: number): void {
  let out = writer.pending
  if (out === null) {
    out = enqueue(writer)
  } else if (out.batch === batch && out.end === index) {
    out.end++
    return
  } else {
    closeRun(out)
  }
  out.batch = batch
  out.start = index
  out.end = index + 1
}

/** Queue a frame that only this writer gets (an ack, an error, the welcome). */
export function queueFrame (writer: TickWriter, frame: Buffer): void {
  const out = writer.pending ?? enqueue(writer)
  closeRun(out)
  out.parts.push(frame)
}

/** Join this tick's end-of-tick look without queueing anything (frames that went through ws.send). */
export function holdUntilNextTick (writer: TickWriter): void {
  if (writer.pending === null) enqueue(writer)
}

/** The writer's output of this tick as one Buffer (null when there is none); forgets it. */
function takeOutput (out: PendingOutput, shared: boolean): Buffer | null {
  const writer = out.writer!
  writer.pending = null
  out.writer = null
  let data: Buffer | null = null
  const parts = out.parts
  if (parts.length === 0) {
    const batch = out.batch
    if (batch !== null) {
      // Before the tick's end the batch may still grow: join only this run's frames then.
      data = shared || out.end - out.start === 1 ? batch.bytes(out.start, out.end) : Buffer.concat(batch.frames.slice(out.start, out.end))
    }
  } else {
    closeRun(out)
    data = parts.length === 1 ? parts[0] : Buffer.concat(parts)
    parts.length = 0
  }
  out.batch = null
  return data
}

function writeOut (writer: TickWriter, data: Buffer | null): void {
  const socket = writer.socket
  if (socket === null) return
  if (data !== null && writer.writable && !socket.destroyed) socket.write(data)
  if (upgradeCorked.size > 0 && upgradeCorked.delete(socket)) socket.uncork()
}

/**
 * Write what this writer has queued now, ahead of the tick's end: before ws writes a close
 * frame, so that frames queued earlier in the tick still precede it.
 */
export function flushNow (writer: TickWriter): void {
  const out = writer.pending
  if (out === null) return
  writeOut(writer, takeOutput(out, false))
}

function flush (): void {
  flushScheduled = false
  const started = writeDelay > 0 ? performance.now() : 0
  // Swap first: what the writes below cause (a slow receiver's `leave`) belongs to the next tick.
  const list = queue
  const count = queued
  queue = flushing
  queued = 0
  flushing = list
  batches.clear()
  for (let i = 0; i < count; i++) {
    const out = list[i]
    const writer = out.writer
    if (writer === null) continue // written ahead (flushNow)
    writeOut(writer, takeOutput(out, true))
    // What is still unsent is judged now, once the kernel took what it could, so a burst to a
    // receiver that reads is not mistaken for a slow one.
    writer.flushed()
  }
  for (const socket of upgradeCorked) socket.uncork()
  upgradeCorked.clear()
  if (writeDelay > 0) {
    lastFlushEnd = performance.now()
    lastFlushMs = lastFlushEnd - started
  } else {
    lastFlushMs = 0
  }
}

/**
 * Hold an upgraded socket's writes until its first frames go out, so that the 101 response and
 * the welcome frame leave in one write.
 */
export function corkUntilFlush (socket: Socket | null | undefined): void {
  if (socket === null || socket === undefined || upgradeCorked.has(socket)) return
  socket.cork()
  upgradeCorked.add(socket)
  scheduleFlush()
}
