// The in-memory history (docs/history.md), used when the adapter has none of its own (one node): per
// room a counter, a bounded ring of the last `size` messages, each kept for `ttlMs`, and an epoch
// made when the room's history is created. Publishing is synchronous, so a room's order is the
// order of the calls. A sweep frees the history of rooms that nobody is in and nobody published to
// for `ttlMs`; a room with members keeps its epoch however quiet it is.
import type { HistoryEntry, HistoryLimits, HistoryPage, RoomsHistory } from '../../types/index.js'
import { newEpoch } from './epoch.js'

/** Where a published message goes on this node, and whether a room still has members here. */
export interface HistorySink {
  deliverHistory (room: string, entry: HistoryEntry): void
  localCount (room: string): number
}

interface Kept {
  offset: number
  payload: string
  except: string | undefined
  at: number
}

interface RoomLog {
  epoch: string
  offset: number
  /** Oldest first; entries before `start` are gone (compacted now and then). */
  entries: Kept[]
  start: number
  /** Last publish, or last sweep that found members. */
  touched: number
}

export class MemoryHistoryStore implements RoomsHistory {
  private readonly size: number
  private readonly ttlMs: number
  private readonly sink: HistorySink
  private readonly logs = new Map<string, RoomLog>()
  private readonly sweeper: NodeJS.Timeout

  constructor (limits: HistoryLimits, sink: HistorySink) {
    this.size = limits.size
    this.ttlMs = limits.ttlMs
    this.sink = sink
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.min(10_000, Math.floor(this.ttlMs / 4))))
    this.sweeper.unref()
  }

  private logOf (room: string, now: number): RoomLog {
    let log = this.logs.get(room)
    if (log === undefined) {
      log = { epoch: newEpoch(), offset: 0, entries: [], start: 0, touched: now }
      this.logs.set(room, log)
    }
    return log
  }

  publish (room: string, head: string, sep: string, except: string | undefined): { epoch: string, offset: number } {
    const now = Date.now()
    const log = this.logOf(room, now)
    const offset = ++log.offset
    const payload = `${head}${sep}"offset":${offset}}`
    log.entries.push({ offset, payload, except, at: now })
    if (log.entries.length - log.start > this.size) this.drop(log, 1)
    log.touched = now
    this.sink.deliverHistory(room, { epoch: log.epoch, offset, payload, except })
    return { epoch: log.epoch, offset }
  }

  read (room: string, after: number, limit?: number): HistoryPage {
    const now = Date.now()
    const log = this.logOf(room, now)
    const oldest = now - this.ttlMs
    const messages: HistoryPage['messages'] = []
    let firstKept: number | undefined
    const max = limit ?? Infinity
    for (let i = log.start; i < log.entries.length; i++) {
      const kept = log.entries[i]
      if (kept.at < oldest) continue
      firstKept ??= kept.offset
      if (kept.offset <= after) continue
      if (messages.length >= max) break
      messages.push(kept.except === undefined
        ? { offset: kept.offset, payload: kept.payload }
        : { offset: kept.offset, payload: kept.payload, except: kept.except })
    }
    const complete = after >= log.offset || (firstKept !== undefined && firstKept <= after + 1)
    return { epoch: log.epoch, offset: log.offset, messages, complete }
  }

  private drop (log: RoomLog, count: number): void {
    log.start += count
    // Compact once the dead head is as long as the ring: amortised O(1) per message.
    if (log.start >= this.size) {
      log.entries = log.entries.slice(log.start)
      log.start = 0
    }
  }

  sweep (now = Date.now()): void {
    const oldest = now - this.ttlMs
    for (const [room, log] of this.logs) {
      let expired = 0
      while (log.start + expired < log.entries.length && log.entries[log.start + expired].at < oldest) expired++
      if (expired > 0) this.drop(log, expired)
      if (this.sink.localCount(room) > 0) log.touched = now
      else if (log.entries.length === log.start && log.touched < oldest) this.logs.delete(room)
    }
  }

  close (): void {
    clearInterval(this.sweeper)
    this.logs.clear()
  }
}
