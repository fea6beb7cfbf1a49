// Two nodes over Redis against one node (issue 4): one room of 200 receivers, half on node A and
// half on node B, the publisher on A. Both columns run the plugin: "plugin" is the two-node
// cluster (Redis adapter, shared prefix, the Redis at 127.0.0.1:6379 or BENCH_REDIS_URL),
// "baseline" is one node with the in-memory adapter and the same 200 receivers. The ratio is
// what crossing Redis costs; on this 2-core machine both nodes, Redis and the generators share
// the cores, so it is no capacity figure.
import { fanoutTiming, measureFanout, writeMetrics } from '../lib/fanout.mjs'
import { redisCpuMetric } from './70-history.mjs'

const pluginScript = new URL('../servers/plugin.mjs', import.meta.url)
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

export default {
  name: 'two-nodes',
  title: 'two nodes over Redis (plugin column) vs one node (baseline column), 1 room × 200',
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
    { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher' },
    { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 },
    ...writeMetrics,
    redisCpuMetric
  ],
  params (opts) {
    return {
      groups: [
        { room: 'two-nodes', receivers: 100, publishers: 1, samplers: 10, node: 0 },
        { room: 'two-nodes', receivers: 100, publishers: 0, samplers: 10, node: 1 }
      ],
      workers: opts.workers,
      ...fanoutTiming(opts)
    }
  },
  run (ctx, side, params) {
    const plugin = { ...side, script: pluginScript }
    if (side.name !== 'plugin') return measureFanout(ctx, plugin, params)
    const prefix = `bench-two-nodes-${process.pid}-${Date.now()}`
    return measureFanout(ctx, plugin, {
      ...params,
      nodes: 2,
      redisUrl,
      serverEnv: () => ({ BENCH_REDIS_URL: redisUrl, BENCH_REDIS_PREFIX: prefix })
    })
  }
}
