// Where the client is in each history room's stream (docs/history.md): the room's epoch, a contiguous
// watermark (every offset up to it was seen) and the few offsets seen beyond it. The watermark is
// what a rejoin asks to recover from; the offsets ahead are what makes a replayed frame a
// duplicate. Offsets arrive out of watermark order in ordinary use: the sender's own message is
// known from its ack, which can come after later messages from others, and a broadcast with
// `except` skips this connection for good.
import type { StreamPosition } from '../../types/protocol.js'

/**
 * Offsets kept beyond the watermark. A gap older than this many later messages is one that will
 * never fill (a broadcast that excepted this connection): the watermark moves past it.
 */
const MAX_AHEAD = 256

interface Position {
  epoch: string
  watermark: number
  ahead: Set<number>
  /** Set while a rejoin with `since` is in flight: new messages seen before its ack. */
  missed: number | undefined
}

/** What a rejoin of a history room found. */
export interface RecoveryResult {
  recovered: boolean
  missed: number
}

function isPosition (data: unknown): data is { epoch: string, offset: number } {
  return data !== null && typeof data === 'object' &&
    typeof (data as { epoch?: unknown }).epoch === 'string' &&
    Number.isSafeInteger((data as { offset?: unknown }).offset)
}

export class StreamPositions {
  readonly #rooms = new Map<string, Position>()

  has (room: string): boolean {
    return this.#rooms.has(room)
  }

  /** The `since` of a rejoin: the epoch and the watermark. */
  since (room: string): StreamPosition | undefined {
    const position = this.#rooms.get(room)
    return position === undefined ? undefined : { epoch: position.epoch, offset: position.watermark }
  }

  /**
   * A join's ack data. `{ epoch, offset }` (a join, or a join of a room already joined): every
   * offset up to `offset` was sent before the ack. Anything else: not a history room (any more).
   */
  joined (room: string, data: unknown): void {
    if (!isPosition(data)) {
      this.#rooms.delete(room)
      return
    }
    const position = this.#rooms.get(room)
    if (position === undefined || position.epoch !== data.epoch) {
      this.#rooms.set(room, { epoch: data.epoch, watermark: data.offset, ahead: new Set(), missed: undefined })
      return
    }
    this.#advanceTo(position, data.offset)
  }

  /** A rejoin with `since` is about to be sent: count what it delivers. */
  recovering (room: string): void {
    const position = this.#rooms.get(room)
    if (position !== undefined) position.missed = 0
  }

  /** The rejoin's ack data; undefined when the room was not being recovered. */
  recovered (room: string, data: unknown): RecoveryResult | undefined {
    const position = this.#rooms.get(room)
    const missed = position?.missed
    if (position !== undefined) position.missed = undefined
    if (missed === undefined) {
      this.joined(room, data)
      return undefined
    }
    const recovered = (data as { recovered?: unknown } | undefined)?.recovered === true
    if (!recovered) this.#rooms.delete(room) // a new epoch, or history that no longer reaches back: start over
    this.joined(room, data)
    return { recovered, missed: recovered ? missed : 0 }
  }

  /** A rejoin failed before its ack: the position stays, for the next try. */
  abandoned (room: string): void {
    const position = this.#rooms.get(room)
    if (position !== undefined) position.missed = undefined
  }

  /** A message with an offset: true when it is new (the application gets it), false for a repeat. */
  accept (room: string, offset: number): boolean {
    const position = this.#rooms.get(room)
    if (position === undefined) return true
    if (!this.#mark(position, offset)) return false
    if (position.missed !== undefined) position.missed++
    return true
  }

  /** The offset of this client's own message, from its ack: seen, never delivered to it. */
  sent (room: string, offset: number): void {
    const position = this.#rooms.get(room)
    if (position !== undefined) this.#mark(position, offset)
  }

  forget (room: string): void {
    this.#rooms.delete(room)
  }

  #mark (position: Position, offset: number): boolean {
    if (!Number.isSafeInteger(offset) || offset <= position.watermark || position.ahead.has(offset)) return false
    if (offset === position.watermark + 1) {
      position.watermark = offset
      this.#drain(position)
      return true
    }
    position.ahead.add(offset)
    if (position.ahead.size > MAX_AHEAD) {
      position.watermark = Math.min(...position.ahead)
      position.ahead.delete(position.watermark)
      this.#drain(position)
    }
    return true
  }

  #advanceTo (position: Position, offset: number): void {
    if (offset <= position.watermark) return
    position.watermark = offset
    for (const seen of position.ahead) if (seen <= offset) position.ahead.delete(seen)
    this.#drain(position)
  }

  #drain (position: Position): void {
    while (position.ahead.delete(position.watermark + 1)) position.watermark++
  }
}
