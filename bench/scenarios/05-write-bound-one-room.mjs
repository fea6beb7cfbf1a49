// The write-bound configuration (issue 28), reported first: one room × 1000 receivers with 32
// messages in flight per publisher, so a write can carry many frames, and a window that lasts
// until every publisher sent at least 1,000 messages in it (a 0.2 s phase is too short for CPU
// accounting). Three columns: the plugin, the tutorial baseline, and the floor (servers/floor.mjs).
import { writeMetrics } from '../lib/fanout.mjs'
import oneRoom from './10-one-room.mjs'

export default {
  name: 'write-bound-one-room',
  title: 'write-bound: one room × 1000, 32 in flight',
  sides: ['plugin', 'baseline', 'floor'],
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
    { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher', floorTarget: { op: '>=', ratio: 0.95 } },
    { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 },
    ...writeMetrics
  ],
  params (opts) {
    const base = oneRoom.params(opts)
    return {
      ...base,
      window: opts.window ?? 32,
      measureMs: opts.measureMs ?? (opts.quick ? 1000 : 2000),
      minMessages: opts.quick ? 300 : 1000
    }
  },
  run: oneRoom.run
}
