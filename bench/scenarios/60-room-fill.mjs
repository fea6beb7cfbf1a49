// Filling one room (issue 10): N clients connect and join the same room one after another, and
// then a mass rejoin (every member of a 4,000 room drops and reconnects within about a second).
// Both columns run the plugin: "plugin" with the default options (presenceEvents 'auto'),
// "baseline" with presenceEvents: 'none', so the ratio is what presence costs on the way.
// Per size: the time to fill, the frames every client received in all (per member, after
// the room went quiet), the server's CPU, and the slow-consumer closes.
import { cpuPercent } from '../lib/stats.mjs'
import { nowMicros } from '../lib/rawws.mjs'

const pluginScript = new URL('../servers/plugin.mjs', import.meta.url)

export default {
  name: 'room-fill',
  title: 'one room filled one join after another: default presence (plugin column) vs presenceEvents none (baseline column)',
  // no load from two sides at once: the figures are times and counts of one side
  metrics: [
    { key: 'fill1000Ms', label: 'fill 1,000 (ms)', better: 'lower' },
    { key: 'fill4000Ms', label: 'fill 4,000 (ms)', better: 'lower', target: { op: '<=', ratio: 1.5 } },
    { key: 'fill10000Ms', label: 'fill 10,000 (ms)', better: 'lower', target: { op: '<=', ratio: 2 } },
    { key: 'frames1000', label: 'frames per member, 1,000', better: 'lower', decimals: 1 },
    { key: 'frames4000', label: 'frames per member, 4,000 (≤ 20)', better: 'lower', decimals: 1 },
    { key: 'frames10000', label: 'frames per member, 10,000', better: 'lower', decimals: 1 },
    { key: 'cpu10000', label: 'server CPU-seconds, fill 10,000', better: 'lower', decimals: 2 },
    { key: 'slowClosed', label: 'slow-consumer closes (all sizes)', better: 'lower' },
    { key: 'rejoin4000Ms', label: 'mass rejoin 4,000 (ms)', better: 'lower' },
    { key: 'rejoinFrames', label: 'frames per member, rejoin', better: 'lower', decimals: 1 },
    { key: 'rejoinSlowClosed', label: 'slow-consumer closes, rejoin', better: 'lower' }
  ],
  params (opts) {
    return {
      sizes: opts.quick ? [1000, 4000] : [1000, 4000, 10000],
      rejoin: 4000,
      // "within one second": enough connections at once for 4,000 to come back in about a second
      rejoinConcurrency: 64
    }
  },
  async run (ctx, side, p) {
    const env = side.name === 'plugin' ? {} : { BENCH_PRESENCE: 'none' }
    const plugin = { ...side, script: pluginScript }
    const values = {}
    const details = { sizes: {} }
    let slowClosed = 0
    for (const size of p.sizes) {
      const r = await fillOnce(ctx, plugin, env, size, { concurrency: 1 })
      values[`fill${size}Ms`] = r.fillMs
      values[`frames${size}`] = r.framesPerMember
      if (size === 10000) values.cpu10000 = r.cpuSeconds
      slowClosed += r.slowClosed
      details.sizes[size] = r
    }
    values.slowClosed = slowClosed
    const rejoin = await fillOnce(ctx, plugin, env, p.rejoin, { concurrency: 8, rejoinConcurrency: p.rejoinConcurrency })
    values.rejoin4000Ms = rejoin.rejoinMs
    values.rejoinFrames = rejoin.rejoinFramesPerMember
    values.rejoinSlowClosed = rejoin.rejoinSlowClosed
    details.rejoin = rejoin
    return { values, cpu: null, details }
  }
}

/** One server: `size` clients join one room (`concurrency` at a time); with `rejoinConcurrency`, all of them then drop and come back. */
async function fillOnce (ctx, side, env, size, { concurrency, rejoinConcurrency }) {
  const server = await ctx.startServer(side, { env })
  let workers = []
  try {
    // One generator: "one after another" means one join at a time.
    workers = await ctx.startWorkers(1)
    const [w] = workers
    const tokenPrefix = ctx.tokenPrefix()
    const connect = (prefix, lanes) => w.request('connect', { port: server.port, count: size, offset: 0, concurrency: lanes, roomSize: size, tokenPrefix: prefix }, 600000)

    const frames0 = (await w.request('frames')).frames
    const u0 = await server.usage()
    const t0 = nowMicros()
    const filled = await connect(tokenPrefix, concurrency)
    const fillMs = (nowMicros() - t0) / 1000
    await ctx.settle(workers, { quietMs: 1500, timeoutMs: 120000 })
    const u1 = await server.usage()
    const frames1 = (await w.request('frames')).frames
    const stats1 = await server.request('stats')
    const result = {
      size,
      ok: filled.ok,
      failed: filled.failed,
      errors: filled.errors,
      fillMs,
      framesPerMember: (frames1 - frames0) / size,
      cpuSeconds: ((u1.cpu.user + u1.cpu.system) - (u0.cpu.user + u0.cpu.system)) / 1e6,
      serverCpuPercent: cpuPercent(u0.cpu, u1.cpu, u1.t - u0.t),
      slowClosed: stats1?.slowConsumersClosed ?? null
    }
    if (rejoinConcurrency === undefined) return result

    // Everyone drops at once; the server sends the leaves, then all of them come back.
    await w.request('close', {}, 60000)
    const f2 = (await w.request('frames')).frames
    const t2 = nowMicros()
    const back = await connect(tokenPrefix, rejoinConcurrency) // the same users, the same room
    result.rejoinMs = (nowMicros() - t2) / 1000
    await ctx.settle(workers, { quietMs: 1500, timeoutMs: 120000 })
    const f3 = (await w.request('frames')).frames
    const stats3 = await server.request('stats')
    result.rejoinFramesPerMember = (f3 - f2) / size
    result.rejoinSlowClosed = (stats3?.slowConsumersClosed ?? 0) - (stats1?.slowConsumersClosed ?? 0)
    result.rejoinOk = back.ok
    result.rejoinFailed = back.failed
    return result
  } finally {
    await ctx.stopWorkers(workers)
    await server.close()
  }
}
