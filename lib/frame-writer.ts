// The fan-out write path. A server frame is unmasked, so one framed Buffer serves every
// receiver of a broadcast. Writes to one socket within a tick are coalesced: the socket is
// corked on its first write and uncorked on the next tick, so one writev carries every frame
// due to it instead of one system call per frame (most of a naive server's CPU is those calls).
import type { Socket } from 'node:net'

/** A complete, unmasked WebSocket text frame (RFC 6455 §5.2: FIN + opcode 1, then the length) in one Buffer. */
export function frameText (payload: string): Buffer {
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

/**
 * Something that writes to one socket and wants to look at it once its writes of the tick went
 * out. `socket` is null when frames go through ws.send (permessage-deflate): nothing to cork,
 * but the end-of-tick look still happens.
 */
export interface CoalescedWriter {
  readonly socket: Socket | null
  /** True between its first write of a tick and the flush. */
  flushPending: boolean
  flushed (): void
}

let pending: CoalescedWriter[] = []
let spare: CoalescedWriter[] = []
let flushScheduled = false

function flush (): void {
  flushScheduled = false
  // Swap lists first: flushed() can run code that writes again.
  const list = pending
  pending = spare
  spare = list
  for (let i = 0; i < list.length; i++) {
    const writer = list[i]
    writer.flushPending = false
    writer.socket?.uncork()
    writer.flushed()
  }
  list.length = 0
}

/** Join this tick's flush: cork the socket (if there is one) until the next tick. */
export function holdUntilNextTick (writer: CoalescedWriter): void {
  if (writer.flushPending) return
  writer.flushPending = true
  writer.socket?.cork()
  pending.push(writer)
  if (!flushScheduled) {
    flushScheduled = true
    process.nextTick(flush)
  }
}

/**
 * Write a framed message, coalescing with every other write to this socket in the same tick.
 * What is still unsent is judged after the uncork (in `flushed`), once the kernel took what it
 * could, so a burst to a receiver that reads is not mistaken for a slow one.
 */
export function writeCoalesced (writer: CoalescedWriter & { readonly socket: Socket }, frame: Buffer): void {
  holdUntilNextTick(writer)
  writer.socket.write(frame)
}

function uncork (socket: Socket): void { socket.uncork() }

/** Hold a socket's writes until the next tick, so that those of this tick leave together. */
export function corkUntilNextTick (socket: Socket | null | undefined): void {
  if (socket === null || socket === undefined) return
  socket.cork()
  process.nextTick(uncork, socket)
}
