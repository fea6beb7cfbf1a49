// The `metrics` option, checked at register: false (off), true (prom-client's default registry),
// or { registry?, prefix?, roomLabel? }. prom-client itself is loaded later, only when it is on.
import { InvalidOptionError } from './errors.js'
import { describe } from './describe.js'

export interface MetricsParams {
  /** A prom-client Registry; undefined: prom-client's default registry. */
  registry: MetricsRegistry | undefined
  prefix: string
  roomLabel: ((room: string) => string) | undefined
}

/** What is used of a prom-client Registry (checked here without loading prom-client). */
export interface MetricsRegistry {
  registerMetric (metric: unknown): void
  getSingleMetric (name: string): unknown
  removeSingleMetric (name: string): void
}

// Prometheus's metric name rule (an empty prefix is allowed).
const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

export function metricsOption (value: unknown): MetricsParams | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return { registry: undefined, prefix: 'ws_rooms_', roomLabel: undefined }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError('metrics', `expected false, true or { registry?, prefix?, roomLabel? }, got ${describe(value)}`)
  }
  const { registry, prefix = 'ws_rooms_', roomLabel, ...rest } = value as Record<string, unknown>
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) throw new InvalidOptionError(`metrics.${unknown}`, 'unknown option (known: registry, prefix, roomLabel)')
  if (registry !== undefined) {
    const r = registry as Partial<MetricsRegistry> | null
    if (r === null || typeof r !== 'object' || typeof r.registerMetric !== 'function' || typeof r.getSingleMetric !== 'function' || typeof r.removeSingleMetric !== 'function') {
      throw new InvalidOptionError('metrics.registry', `expected a prom-client Registry, got ${describe(registry)}`)
    }
  }
  if (typeof prefix !== 'string' || (prefix !== '' && !PREFIX.test(prefix))) {
    throw new InvalidOptionError('metrics.prefix', `expected a metric name prefix (letters, digits, _ and :, not starting with a digit), got ${describe(prefix)}`)
  }
  if (roomLabel !== undefined && typeof roomLabel !== 'function') {
    throw new InvalidOptionError('metrics.roomLabel', `expected a function (room) => string, got ${describe(roomLabel)}`)
  }
  return { registry: registry as MetricsRegistry | undefined, prefix, roomLabel: roomLabel as MetricsParams['roomLabel'] }
}

/** The application's roomLabel for `room`: a throw or a non-string must not break a frame or a scrape. */
export function roomLabelOf (roomLabel: (room: string) => string, room: string): string {
  try {
    const label = roomLabel(room)
    return typeof label === 'string' ? label : String(label)
  } catch {
    return ''
  }
}
