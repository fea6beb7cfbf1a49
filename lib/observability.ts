// Metrics and tracing, set up at register: prom-client and @opentelemetry/api are optional peers,
// imported here only when they are wanted (metrics) or present (tracing). What each frame then goes
// through is the FrameInstrument; with neither, there is none and frames do not pay for it.
import { FrameInstrument, type FrameMetrics } from './frame-instrument.js'
import { startMetrics } from './metrics.js'
import type { RoomsNode } from './node.js'
import { FrameTracing, loadOtelApi } from './tracing.js'

export interface Observability {
  readonly instrument: FrameInstrument | null
  readonly tracing: FrameTracing | null
  /** Take this instance's series out of the registry. */
  close (): void
}

export async function startObservability (node: RoomsNode): Promise<Observability> {
  const { params, hub, counters, handlers } = node
  let metrics: FrameMetrics | null = null
  let closeMetrics = (): void => {}
  if (params.metrics !== undefined) {
    const frames = new Map<string, Map<string, number>>()
    const roomLabel = params.metrics.roomLabel
    const started = await startMetrics(params.metrics, {
      counters,
      frames,
      roomLabel,
      connectionCount: () => hub.connectionCount,
      roomList: () => hub.roomList()
    })
    metrics = { frames, roomLabel, handlerDuration: started.handlerDuration }
    closeMetrics = started.close
  }
  const api = await loadOtelApi()
  const tracing = api === null ? null : new FrameTracing(api)
  if (tracing !== null) {
    node.commands.replies.onRefused = (conn, code, err) => { tracing.refused(conn, code, err) }
    node.link.useTracing(tracing)
  }
  const instrument = metrics === null && tracing === null ? null : new FrameInstrument(handlers, metrics, tracing)
  return { instrument, tracing, close: closeMetrics }
}
