// 100 rooms of 10 receivers, one publisher each: many small fan-outs at once.
import { fanoutTiming, measureFanout, writeMetrics } from '../lib/fanout.mjs'

export default {
  name: 'many-rooms',
  title: '100 rooms × 10 receivers',
  sides: ['plugin', 'baseline', 'floor'],
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
    { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher', target: { op: '>=', ratio: 6 } },
    { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2 },
    ...writeMetrics
  ],
  params (opts) {
    const rooms = 100
    const groups = []
    for (let r = 0; r < rooms; r++) groups.push({ room: `bench-room-${r}`, receivers: 10, publishers: 1, samplers: 0 })
    return {
      rooms,
      groups,
      workers: opts.workers,
      ...fanoutTiming(opts)
    }
  },
  run (ctx, side, params) {
    return measureFanout(ctx, side, params)
  }
}
