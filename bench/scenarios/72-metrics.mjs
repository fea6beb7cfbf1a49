// What metrics and tracing cost (docs/metrics.md). Both columns run the plugin: the "plugin"
// column with the feature on, the "baseline" column without it, so the ratio is the feature's
// cost per delivery and per server CPU-second. Scenarios (73-75 reuse observabilityScenario):
//   metrics             metrics on (scraped every second) vs off, 1 room × 1000
//   metrics-many-rooms  the same, 100 rooms × 10 (one handled frame per 9 deliveries)
//   tracing             a provider registered (every frame a span) vs no provider, 1 room × 1000
//   tracing-noop        @opentelemetry/api installed, no provider vs not installed, 100 rooms × 10
import { measureFanout } from '../lib/fanout.mjs'
import manyRooms from './20-many-rooms.mjs'
import oneRoom from './10-one-room.mjs'

const pluginScript = new URL('../servers/plugin.mjs', import.meta.url)

/** `on` / `off`: the server environment of the plugin / baseline column; `shape`: one-room or many-rooms. */
export function observabilityScenario (name, title, shape, on, off = {}) {
  return {
    name,
    title: `${title} (plugin column) vs without (baseline column), ${shape === manyRooms ? '100 rooms × 10' : '1 room × 1000'}`,
    metrics: [
      { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
      { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher' },
      { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
      { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 }
    ],
    params: (opts) => shape.params(opts),
    run (ctx, side, params) {
      const env = side.name === 'plugin' ? on : off
      return measureFanout(ctx, { ...side, script: pluginScript }, { ...params, serverEnv: () => env })
    }
  }
}

export const shapes = { oneRoom, manyRooms }

export default observabilityScenario('metrics', 'metrics on', oneRoom, { BENCH_METRICS: '1' })
