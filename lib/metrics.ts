// Prometheus series through prom-client (an optional peer dependency, imported only when the
// `metrics` option is on). Almost every value is read at scrape time from what the node counts
// anyway (stats.ts's counters and tallies, the hub's sizes): the delivery path makes no metric
// call. Only frames received by type and the handler-time histogram are recorded per client frame
// (frame-instrument.ts), and only when metrics are on.
//
// Several plugin instances may share one registry and prefix (two Fastify apps in one process on
// prom-client's default registry): they share the series, and each scrape sums every instance.
import { InvalidOptionError } from './errors.js'
import { type MetricsParams, type MetricsRegistry, roomLabelOf } from './metrics-option.js'
import type { Counters } from './stats.js'

/** What one plugin instance shows: read at scrape time. */
export interface MetricsSource {
  readonly counters: Counters
  connectionCount (): number
  /** This node's rooms and their local sizes. */
  roomList (): Array<{ room: string, size: number }>
  /** Client frames received, by type label then room label ('' without roomLabel or a room). */
  readonly frames: Map<string, Map<string, number>>
  readonly roomLabel: ((room: string) => string) | undefined
}

interface PromClient {
  register: MetricsRegistry
  Gauge: new (config: object) => Collectable
  Counter: new (config: object) => Collectable
}

interface Collectable {
  set (labels: Record<string, string>, value: number): void
  set (value: number): void
  inc (labels: Record<string, string>, value: number): void
  inc (value: number): void
  reset (): void
}

export interface HistogramMetric {
  observe (type: string, seconds: number): void
}

/** Per frame type: counts per bucket (the last one above every bound), their sum and count. */
interface Durations { buckets: Float64Array, sum: number, count: number }

/**
 * The handler-time histogram, observed once per handled frame. prom-client's Histogram hashes
 * its labels on every observe (about 0.2 µs, a quarter of a small frame's whole handling); this
 * one finds the type's buckets in a Map and counts. The registry reads it as it reads its own
 * metrics (name, help, type, and get() with the values of the exposition).
 */
class DurationHistogram implements HistogramMetric {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  private readonly byType = new Map<string, Durations>()

  constructor (name: string, help: string) {
    this.name = name
    this.help = help
  }

  observe (type: string, seconds: number): void {
    let durations = this.byType.get(type)
    if (durations === undefined) {
      durations = { buckets: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0 }
      this.byType.set(type, durations)
    }
    let i = 0
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]) i++
    durations.buckets[i]++
    durations.sum += seconds
    durations.count++
  }

  get (): { name: string, help: string, type: string, aggregator: string, values: Array<{ value: number, labels: Record<string, string | number>, metricName: string }> } {
    const values = []
    for (const [type, { buckets, sum, count }] of this.byType) {
      let cumulative = 0
      for (let i = 0; i < DURATION_BUCKETS.length; i++) {
        cumulative += buckets[i]
        values.push({ value: cumulative, labels: { le: DURATION_BUCKETS[i], type }, metricName: `${this.name}_bucket` })
      }
      values.push({ value: count, labels: { le: '+Inf', type }, metricName: `${this.name}_bucket` })
      values.push({ value: sum, labels: { type }, metricName: `${this.name}_sum` })
      values.push({ value: count, labels: { type }, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    this.byType.clear()
  }
}

/** The series of one registry and prefix, and the instances they show. */
interface MetricSet {
  readonly names: string[]
  readonly withRoom: boolean
  readonly sources: Set<MetricsSource>
  readonly handlerDuration: HistogramMetric
}

const sets = new WeakMap<MetricsRegistry, Map<string, MetricSet>>()

/** Handler time buckets, in seconds: most frames take well under a millisecond; async handlers more. */
const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

let loaded: Promise<PromClient> | undefined

/** prom-client, imported once per process; a clear error when it is not installed. */
function loadPromClient (): Promise<PromClient> {
  loaded ??= import('prom-client').then(
    (module) => (typeof (module as { Registry?: unknown }).Registry === 'function' ? module : (module as unknown as { default: PromClient }).default) as unknown as PromClient,
    (err: unknown) => {
      loaded = undefined
      const code = (err as { code?: unknown } | null)?.code
      const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
      throw new InvalidOptionError('metrics', missing
        ? 'it needs the prom-client package, which is not installed: npm install prom-client'
        : `prom-client could not be loaded (${(err as Error)?.message ?? String(err)})`)
    }
  )
  return loaded
}

export interface NodeMetrics {
  readonly handlerDuration: HistogramMetric
  /** Stop showing this instance; the series go when no instance shows them. */
  close (): void
}

/** Register this instance's series (or join the ones another instance registered) in the registry. */
export async function startMetrics (params: MetricsParams, source: MetricsSource): Promise<NodeMetrics> {
  const client = await loadPromClient()
  const registry = params.registry ?? client.register
  let byPrefix = sets.get(registry)
  if (byPrefix === undefined) {
    byPrefix = new Map()
    sets.set(registry, byPrefix)
  }
  const withRoom = params.roomLabel !== undefined
  let set = byPrefix.get(params.prefix)
  if (set === undefined) {
    set = createSet(client, registry, params.prefix, withRoom)
    byPrefix.set(params.prefix, set)
  } else if (set.withRoom !== withRoom) {
    throw new InvalidOptionError('metrics.roomLabel', `another instance registered the ${params.prefix}* series ${set.withRoom ? 'with' : 'without'} roomLabel in this registry; give this one the same, or another prefix`)
  }
  set.sources.add(source)
  const registered = set
  return {
    handlerDuration: set.handlerDuration,
    close: () => {
      registered.sources.delete(source)
      if (registered.sources.size > 0) return
      for (const name of registered.names) registry.removeSingleMetric(name)
      byPrefix.delete(params.prefix)
    }
  }
}

function createSet (client: PromClient, registry: MetricsRegistry, prefix: string, withRoom: boolean): MetricSet {
  const sources = new Set<MetricsSource>()
  const names: string[] = []
  const room = withRoom ? ['room'] : []
  /** `full` is ours from now on; a name taken by something else fails register, leaving nothing of ours behind. */
  const claim = (full: string): void => {
    if (registry.getSingleMetric(full) !== undefined) {
      // Registered by something else (the user, or the other build of this package loaded beside this one).
      for (const done of names) registry.removeSingleMetric(done)
      throw new InvalidOptionError('metrics.prefix', `a metric named ${full} is already registered in this registry; give another prefix or registry`)
    }
    names.push(full)
  }
  const metric = <M>(Kind: new (config: object) => M, name: string, help: string, labelNames: string[], collect?: (this: Collectable) => void): M => {
    claim(prefix + name)
    return new Kind({ name: prefix + name, help, labelNames, registers: [registry], collect })
  }
  /** A counter whose value is the sum over the instances of a tally, read at scrape time. */
  const tallied = <K>(name: string, help: string, label: string, map: (counters: Counters) => Map<K, number>): void => {
    metric(client.Counter, name, help, [label], function () {
      this.reset()
      for (const source of sources) for (const [key, count] of map(source.counters)) this.inc({ [label]: String(key) }, count)
    })
  }
  const summed = (Kind: PromClient['Gauge'], name: string, help: string, read: (source: MetricsSource) => number): void => {
    metric(Kind, name, help, [], function () {
      let total = 0
      for (const source of sources) total += read(source)
      this.reset()
      if (Kind === client.Gauge) this.set(total)
      else this.inc(total)
    })
  }

  summed(client.Gauge, 'connections', 'Open WebSocket connections on this node', (s) => s.connectionCount())
  if (withRoom) {
    metric(client.Gauge, 'rooms', 'Rooms with members on this node, by roomLabel', room, function () {
      this.reset()
      const counts = new Map<string, number>()
      for (const source of sources) {
        for (const { room } of source.roomList()) {
          const label = roomLabelOf(source.roomLabel!, room)
          counts.set(label, (counts.get(label) ?? 0) + 1)
        }
      }
      for (const [label, count] of counts) this.set({ room: label }, count)
    })
  } else {
    summed(client.Gauge, 'rooms', 'Rooms with members on this node', (s) => s.roomList().length)
  }
  metric(client.Counter, 'frames_received_total', 'Client frames received, by type (other: not a frame of a known type)', ['type', ...room], function () {
    this.reset()
    for (const source of sources) {
      for (const [type, byRoom] of source.frames) {
        for (const [label, count] of byRoom) this.inc(withRoom ? { type, room: label } : { type }, count)
      }
    }
  })
  summed(client.Counter, 'frames_sent_total', 'Frames sent to clients', (s) => s.counters.messagesOut)
  tallied('refused_total', 'Client frames refused with an error frame, by error code', 'code', (c) => c.refusals)
  tallied('upgrades_refused_total', 'WebSocket upgrades refused, by HTTP status', 'status', (c) => c.upgradesRefused)
  tallied('closes_total', 'Connections closed, by close code (the server\'s, or the client\'s when it closed first)', 'code', (c) => c.closes)
  metric(client.Counter, 'recoveries_total', 'History rejoins with since, by whether every missed message was recovered', ['recovered'], function () {
    this.reset()
    let recovered = 0
    let lost = 0
    for (const { counters } of sources) {
      recovered += counters.recovered
      lost += counters.notRecovered
    }
    this.inc({ recovered: 'true' }, recovered)
    this.inc({ recovered: 'false' }, lost)
  })
  summed(client.Counter, 'dropped_total', 'Messages that could not be carried to the other nodes', (s) => s.counters.dropped)
  const handlerDuration = new DurationHistogram(prefix + 'handler_duration_seconds', 'Time to handle a client frame, by type (until its reply, for frames that wait)')
  claim(handlerDuration.name)
  registry.registerMetric(handlerDuration)
  return { names, withRoom, sources, handlerDuration }
}
