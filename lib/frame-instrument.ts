// What is recorded per client frame when metrics or tracing are on: the frame counted by type,
// the time its handling took, and (tracing.ts) a span around it. When both are off the frame
// handler never calls in here: no cost per frame.
import type { HandlerRegistry } from './commands/registry.js'
import type { Connection } from './connection.js'
import { isClientFrameType, type ParsedFrame } from './protocol/client-frames.js'
import { roomLabelOf } from './metrics-option.js'
import type { HistogramMetric } from './metrics.js'
import type { RateVerdict } from './rate-limiter.js'
import type { FrameTracing } from './tracing.js'

export type HandleParsed = (conn: Connection, parsed: ParsedFrame, verdict: RateVerdict) => void | Promise<void>

/** The type label of frames that are not a frame of a known type: a client cannot make up label values. */
export const OTHER = 'other'
export const UNKNOWN = 'unknown'

export interface FrameMetrics {
  /** Frames received: type label, then room label ('' without roomLabel or without a room). */
  readonly frames: Map<string, Map<string, number>>
  readonly roomLabel: ((room: string) => string) | undefined
  readonly handlerDuration: HistogramMetric
}

export class FrameInstrument {
  private readonly handlers: HandlerRegistry
  private readonly metrics: FrameMetrics | null
  private readonly tracing: FrameTracing | null

  constructor (handlers: HandlerRegistry, metrics: FrameMetrics | null, tracing: FrameTracing | null) {
    this.handlers = handlers
    this.metrics = metrics
    this.tracing = tracing
  }

  /** The frame's type as a label: a built-in or registered type, else unknown (or other when it has none). */
  typeOf (parsed: ParsedFrame): string {
    if (!parsed.ok) return OTHER
    const type = parsed.message.type
    return isClientFrameType(type) || this.handlers.get(type) !== undefined ? type : UNKNOWN
  }

  /** A frame read but never parsed (binary, too large): counted as other. */
  unparsed (): void {
    if (this.metrics !== null) this.count(OTHER, '')
  }

  handle (conn: Connection, parsed: ParsedFrame, verdict: RateVerdict, next: HandleParsed): void | Promise<void> {
    const metrics = this.metrics
    const traced = this.tracing !== null && parsed.ok && this.tracing.enabled()
    // @opentelemetry/api installed but no provider registered, and no metrics: nothing to record.
    if (metrics === null && !traced) return next(conn, parsed, verdict)
    const type = this.typeOf(parsed)
    if (metrics !== null) {
      const room = parsed.ok ? parsed.message.room : undefined
      this.count(type, metrics.roomLabel !== undefined && typeof room === 'string' ? roomLabelOf(metrics.roomLabel, room) : '')
    }
    if (!parsed.ok) return next(conn, parsed, verdict)
    if (traced) return this.tracing!.run(conn, type, parsed.message, () => this.timed(conn, parsed, verdict, next, type))
    return this.timed(conn, parsed, verdict, next, type)
  }

  private timed (conn: Connection, parsed: ParsedFrame, verdict: RateVerdict, next: HandleParsed, type: string): void | Promise<void> {
    const metrics = this.metrics
    if (metrics === null) return next(conn, parsed, verdict)
    const start = performance.now()
    const done = (): void => { metrics.handlerDuration.observe(type, (performance.now() - start) / 1000) }
    let pending: void | Promise<void>
    try {
      pending = next(conn, parsed, verdict)
    } catch (err) {
      done()
      throw err
    }
    if (pending === undefined) {
      done()
      return
    }
    return pending.finally(done)
  }

  private count (type: string, room: string): void {
    const frames = this.metrics!.frames
    let byRoom = frames.get(type)
    if (byRoom === undefined) {
      byRoom = new Map()
      frames.set(type, byRoom)
    }
    byRoom.set(room, (byRoom.get(room) ?? 0) + 1)
  }
}
