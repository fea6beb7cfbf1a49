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

/** Something that owns a socket and wants to look at it once its writes of the tick have gone out. */
export interface CoalescedWriter {
  readonly socket: Socket | null
  flushed (): void
}

let corked: CoalescedWriter[] = []
let spare: CoalescedWriter[] = []
let flushScheduled = false

function flush (): void {
  flushScheduled = false
  // Swap lists first: flushed() can run code that writes (and corks) again.
  const list = corked
  corked = spare
  spare = list
  for (let i = 0; i < list.length; i++) {
    const writer = list[i]
    writer.socket!.uncork()
    writer.flushed()
  }
  list.length = 0
}

/**
 * Write a framed message, coalescing with every other write to this socket in the same tick.
 * What is still unsent is judged after the uncork (in `flushed`), once the kernel took what it
 * could, so a burst to a receiver that reads is not mistaken for a slow one.
 */
export function writeCoalesced (writer: CoalescedWriter, frame: Buffer): void {
  const socket = writer.socket!
  if (socket.writableCorked === 0) {
    socket.cork()
    corked.push(writer)
    if (!flushScheduled) {
      flushScheduled = true
      process.nextTick(flush)
    }
  }
  socket.write(frame)
}
