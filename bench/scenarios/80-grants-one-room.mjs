// What grants cost per message: the plugin with every session holding grants (a few exact rooms
// and prefixes; the bench's rooms match the last prefix, so each join and message check walks
// the list) in the plugin column, the plugin without grants in the baseline column. Two shapes:
// one room × 1000 receivers (the check is once per message, its cost spread over 1000
// deliveries) and 100 rooms × 10 (the check is a tenth of a message's work at most).
import { measureFanout } from '../lib/fanout.mjs'
import oneRoom from './10-one-room.mjs'

const pluginScript = new URL('../servers/plugin.mjs', import.meta.url)

/** A grants-on against grants-off scenario of `shape` (a fan-out scenario's params); also used by grants-many-rooms. */
export function grantsScenario (name, shape, title) {
  return {
    name,
    title: `grants (plugin column) vs no grants (baseline column), memory adapter, ${title}`,
    metrics: [
      { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
      { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher' },
      { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
      { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 }
    ],
    params: (opts) => shape.params(opts),
    run (ctx, side, params) {
      const serverEnv = side.name === 'plugin' ? { BENCH_GRANTS: '1' } : {}
      return measureFanout(ctx, { ...side, script: pluginScript }, { ...params, serverEnv: () => serverEnv })
    }
  }
}

export default grantsScenario('grants-one-room', oneRoom, '1 room × 1000')
