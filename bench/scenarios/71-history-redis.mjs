// The history scenario with the Redis adapter (the Redis at 127.0.0.1:6379 or BENCH_REDIS_URL,
// under a prefix of its own per run): history: { size: 100 } ordered and kept by Redis (plugin
// column) against the same adapter without history (baseline column), one node, 1 room × 1000.
import { measureFanout } from '../lib/fanout.mjs'
import oneRoom from './10-one-room.mjs'

const pluginScript = new URL('../servers/plugin.mjs', import.meta.url)
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

export default {
  name: 'history-redis',
  title: 'history: { size: 100 } (plugin column) vs no history (baseline column), Redis adapter, 1 room × 1000',
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
    { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher' },
    { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 }
  ],
  params: (opts) => oneRoom.params(opts),
  run (ctx, side, params) {
    const env = {
      BENCH_REDIS_URL: redisUrl,
      BENCH_REDIS_PREFIX: `bench-history-${process.pid}-${Date.now()}`,
      ...(side.name === 'plugin' ? { BENCH_HISTORY_SIZE: '100' } : {})
    }
    return measureFanout(ctx, { ...side, script: pluginScript }, { ...params, serverEnv: () => env })
  }
}
