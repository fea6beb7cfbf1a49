// The order of a connection's frames: size/binary (ws and here), the rate limit, then each frame
// in its turn to commands/ (parse, schema, meaning). Frames of one connection are handled one at
// a time: while one waits on async work (a join's subscribe, an async handler), later frames wait
// in a small backlog, so replies keep the order of the requests.
import type { RawData } from 'ws'
import { type CommandContext, dispatch } from './commands/index.js'
import type { Connection } from './connection.js'
import type { FrameInstrument } from './frame-instrument.js'
import { idOf, type ParsedFrame, parseFrame } from './protocol/client-frames.js'
import { ALLOW, CLOSE, countFrame, REFUSE, type RateVerdict } from './rate-limiter.js'
import type { Counters } from './stats.js'

/** How many frames may wait behind a slow one before the connection is closed (1008); bytes are bounded by maxBacklogBytes. */
const MAX_BACKLOG = 1024

export interface FrameHandler {
  onFrame: (conn: Connection, data: RawData, isBinary: boolean) => void
  /** Frames from before the welcome waited (see `hold`): handle them now. */
  resume: (conn: Connection) => void
}

/** Frames that arrive before the connection is welcomed wait, as they do behind a slow frame. */
export function hold (conn: Connection): void {
  conn.backlog ??= []
}

/** `instrument`: metrics and tracing per frame (frame-instrument.ts); null when both are off. */
export function createFrameHandler (ctx: CommandContext, counters: Counters, instrument: FrameInstrument | null = null): FrameHandler {
  const { rateLimitMax, rateLimitWindowMs, maxPayload, maxBacklogBytes } = ctx.params
  const replies = ctx.replies

  /** A frame in its turn, with the rate limiter's verdict from when it arrived: handle, refuse, or close. */
  function handleInTurn (conn: Connection, text: string, verdict: RateVerdict): void | Promise<void> {
    if (verdict === CLOSE) {
      conn.close(1008, 'Rate limit exceeded')
      return
    }
    const parsed = parseFrame(text)
    if (instrument !== null) return instrument.handle(conn, parsed, verdict, handleParsed)
    return handleParsed(conn, parsed, verdict)
  }

  function handleParsed (conn: Connection, parsed: ParsedFrame, verdict: RateVerdict): void | Promise<void> {
    if (verdict === REFUSE) replies.refuse(conn, 'rate_limited', parsed.ok ? idOf(parsed.message) : parsed.id)
    else if (!parsed.ok) replies.malformed(conn, parsed.text, parsed.id)
    else return dispatch(ctx, conn, parsed.message)
  }

  /** Handle frames that waited behind an async one, until the backlog is empty or another one waits. */
  function drain (conn: Connection): void {
    const backlog = conn.backlog
    if (backlog === null) return // closed meanwhile: the backlog was dropped
    let next = 0
    while (next < backlog.length && conn.open) {
      const { text, verdict } = backlog[next++]
      conn.backlogBytes -= text.length
      const pending = handleInTurn(conn, text, verdict)
      if (pending !== undefined) {
        backlog.splice(0, next)
        pending.then(() => drain(conn), () => drain(conn))
        return
      }
    }
    conn.dropBacklog()
  }

  function onFrame (conn: Connection, data: RawData, isBinary: boolean): void {
    if (!conn.open || conn.closeQueued) return
    const now = Date.now()
    conn.lastSeen = now
    conn.spoke = true
    counters.messagesIn++
    if (isBinary) {
      instrument?.unparsed()
      conn.close(1003, 'Binary frames are not accepted')
      return
    }
    // ws already enforces maxPayload; this guards a @fastify/websocket the user set up with a larger limit.
    const text = (data as Buffer).length > maxPayload ? null : data.toString()
    if (text === null) {
      instrument?.unparsed()
      conn.close(1009, 'Frame too large')
      return
    }
    // Counted on arrival, applied in turn: replies and the 1008 close keep the order of the frames.
    const verdict = rateLimitMax > 0 ? countFrame(conn, now, rateLimitMax, rateLimitWindowMs) : ALLOW
    if (verdict !== ALLOW) counters.rateLimited++
    if (conn.backlog !== null) {
      // Counted in UTF-16 code units (what the strings hold), at most 2 bytes each on the heap.
      if (conn.backlog.length >= MAX_BACKLOG || conn.backlogBytes + text.length > maxBacklogBytes) {
        conn.close(1008, 'Too many frames waiting')
        return
      }
      conn.backlogBytes += text.length
      conn.backlog.push({ text, verdict })
      if (verdict === CLOSE) conn.closeQueued = true
      return
    }
    const pending = handleInTurn(conn, text, verdict)
    if (pending !== undefined) {
      conn.backlog = []
      pending.then(() => drain(conn), () => drain(conn))
    }
  }

  return { onFrame, resume: drain }
}
