// Fan-out into a history room (§9) against the same room without history: one room × 1000
// receivers, as in one-room. Both columns run the plugin with the in-memory adapter: "plugin"
// with history: { size: 100 } (every message gets its offset and is kept), "baseline" without.
// The ratio is what keeping and ordering the history costs per delivery.
import { measureFanout, writeMetrics } from '../lib/fanout.mjs'
import oneRoom from './10-one-room.mjs'

const pluginScript = new URL('../servers/plugin.mjs', import.meta.url)

/** Redis's CPU per published message, for the scenarios over Redis. */
export const redisCpuMetric = { key: 'redisCpuPerMessageUs', label: 'Redis CPU per message (µs)', better: 'lower', decimals: 1 }

/**
 * A history-on against history-off scenario; `env()` is the server environment both columns
 * share (the adapter), the plugin column adds history: { size: 100 }. Also used by history-redis
 * (with `redisUrl`: Redis's CPU per message is reported).
 */
export function historyScenario (name, adapterTitle, env = () => ({}), redisUrl) {
  return {
    name,
    title: `history: { size: 100 } (plugin column) vs no history (baseline column), ${adapterTitle}, 1 room × 1000`,
    metrics: [
      { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
      { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher' },
      { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
      { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 },
      ...writeMetrics,
      ...(redisUrl ? [redisCpuMetric] : [])
    ],
    params: (opts) => ({ ...oneRoom.params(opts), redisUrl }),
    run (ctx, side, params) {
      const serverEnv = { ...env(), ...(side.name === 'plugin' ? { BENCH_HISTORY_SIZE: '100' } : {}) }
      return measureFanout(ctx, { ...side, script: pluginScript }, { ...params, serverEnv: () => serverEnv })
    }
  }
}

export default historyScenario('history', 'memory adapter')
