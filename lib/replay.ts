// A recovering joiner's catch-up, queued as its socket takes it: at most `limit` bytes unsent at a
// time (RoomStream gives half of maxBufferedBytes, the other half stays for its live traffic), the
// rest each time the socket drained to that. A joiner that does not read holds its catch-up where
// it is (the history keeps it anyway) instead of growing the server's buffers; one that reads gets
// all of it. The live messages that arrived during the catch-up follow it, so its ack is not
// followed by a burst.
import type { HistoryEntry, HistoryPage } from '../types/index.js'
import type { Connection } from './connection.js'

/** A join catching up: live messages wait in `buffer` until its ack is out. */
export interface Joiner {
  /** The offset the join's read ended at: the joiner takes live messages after it; -1 while the read runs. */
  from: number
  buffer: HistoryEntry[] | null
  /** Size of the payloads in `buffer` (UTF-16 code units), counted against maxBufferedBytes. */
  bufferedSize: number
  /** Acked, and waiting only for the node's flow to pass `from`. */
  ready: boolean
}

/** A join's catch-up in progress: the page it read, how far it got. */
export interface CatchUp {
  conn: Connection
  joiner: Joiner
  page: HistoryPage
  /** The joiner's `since.offset`: it has everything up to it. */
  after: number
  /** Next message of `page.messages` to look at. */
  next: number
  /** Whether this is still the connection's join (not closed, left, or its history lost meanwhile). */
  current: () => boolean
}

/** Queue all of `catchUp`: undefined when it is queued now, else a promise that resolves once it is (or the join is over). */
export function replay (catchUp: CatchUp, limit: number): Promise<void> | undefined {
  if (step(catchUp, limit)) return undefined
  const conn = catchUp.conn
  return new Promise((resolve) => {
    const more = (): void => {
      if (step(catchUp, limit)) resolve()
      else conn.whenUnsentAtMost(limit).then(more, more)
    }
    conn.whenUnsentAtMost(limit).then(more, more)
  })
}

/**
 * Queue what fits: the page's messages after `since`, then the live messages that arrived
 * meanwhile. True once all of it is queued, or once the join is over.
 */
function step (catchUp: CatchUp, limit: number): boolean {
  const { conn, joiner, page } = catchUp
  if (!conn.open || !catchUp.current()) return true
  const messages = page.messages
  // Each step queues at least one message (a step runs once unsent <= limit): it always ends.
  while (catchUp.next < messages.length) {
    if (conn.unsent > limit) return false
    const m = messages[catchUp.next++]
    if (m.offset > catchUp.after && m.offset <= page.offset && m.except !== conn.id) conn.sendPayload(m.payload)
  }
  const buffer = joiner.buffer!
  let taken = 0
  while (taken < buffer.length && conn.unsent <= limit) {
    const entry = buffer[taken++]
    joiner.bufferedSize -= entry.payload.length
    if (entry.offset <= joiner.from) continue
    joiner.from = entry.offset
    if (entry.except !== conn.id) conn.sendPayload(entry.payload)
  }
  buffer.splice(0, taken)
  return buffer.length === 0
}
