// The write-bound configuration in 100 rooms × 10 receivers (issue 28): 32 messages in flight
// per publisher, a window that lasts until every publisher sent at least 500 messages in it.
// Three columns: the plugin, the tutorial baseline, and the floor (servers/floor.mjs).
import { writeMetrics } from '../lib/fanout.mjs'
import manyRooms from './20-many-rooms.mjs'

export default {
  name: 'write-bound-many-rooms',
  title: 'write-bound: 100 rooms × 10, 32 in flight',
  sides: ['plugin', 'baseline', 'floor'],
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
    { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher', floorTarget: { op: '>=', ratio: 1 } },
    { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 },
    ...writeMetrics
  ],
  params (opts) {
    const base = manyRooms.params(opts)
    return {
      ...base,
      window: opts.window ?? 32,
      measureMs: opts.measureMs ?? (opts.quick ? 1000 : 2000),
      minMessages: opts.quick ? 150 : 500
    }
  },
  run: manyRooms.run
}
