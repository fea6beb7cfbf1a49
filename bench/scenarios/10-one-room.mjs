// One room, 1000 receivers, publishers at the rate the slower side sustains: the fan-out path.
import { fanoutTiming, measureFanout, writeMetrics } from '../lib/fanout.mjs'

export default {
  name: 'one-room',
  title: 'one room × 1000 receivers',
  sides: ['plugin', 'baseline', 'floor'],
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
    // issue 12: per server CPU-second, so that other load on the machine does not move the figure
    { key: 'deliveriesPerCpuSec', label: 'deliveries per server CPU-second', better: 'higher', target: { op: '>=', ratio: 15 } },
    { key: 'p50', label: 'p50 latency (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 latency (ms)', better: 'lower', decimals: 2, target: { op: '<=', ratio: 0.3 } },
    ...writeMetrics
  ],
  params (opts) {
    const receivers = opts.quick ? 500 : 1000
    const workers = opts.workers
    // One share of the room per worker, each with its own publisher and pacer.
    const groups = []
    for (let w = 0; w < workers; w++) {
      const share = Math.floor(receivers / workers) + (w < receivers % workers ? 1 : 0)
      groups.push({ room: 'bench-one-room', receivers: share, publishers: opts.publishers ?? 1, samplers: 10 })
    }
    return {
      receivers,
      groups,
      workers,
      ...fanoutTiming(opts)
    }
  },
  run (ctx, side, params) {
    return measureFanout(ctx, side, params)
  }
}
