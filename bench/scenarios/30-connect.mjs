// Connect + authenticate + join for 2000 clients: the upgrade path (Origin/token checks,
// routing, the welcome frame, one join with ack). Each client joins a room of its own, so the
// figure measures the handshake, not fan-out.
import { cpuPercent, eluPercent, machineCpu, machinePercent, percentile, sleep } from '../lib/stats.mjs'
import { nowMicros } from '../lib/rawws.mjs'

export default {
  name: 'connect',
  title: 'connect + auth + join',
  metrics: [
    { key: 'connectionsPerSec', label: 'connections/s', better: 'higher' },
    { key: 'connectionsPerCpuSec', label: 'connections per server CPU-second', better: 'higher', target: { op: '>=', ratio: 1 } },
    { key: 'p50', label: 'p50 connect→ack (ms)', better: 'lower', decimals: 2 },
    { key: 'p99', label: 'p99 connect→ack (ms)', better: 'lower', decimals: 2 }
  ],
  params (opts) {
    return {
      clients: opts.quick ? 1000 : 2000,
      warmupClients: 200,
      workers: opts.workers,
      // connections in progress at once, over all workers
      concurrency: 128
    }
  },
  async run (ctx, side, p) {
    const server = await ctx.startServer(side)
    let workers = []
    try {
      workers = await ctx.startWorkers(p.workers)
      const perWorker = (total) => workers.map((_, i) => Math.floor(total / workers.length) + (i < total % workers.length ? 1 : 0))
      const lanes = Math.max(1, Math.floor(p.concurrency / workers.length))

      // Warm up (JIT, lazily loaded modules) and return to an empty server before measuring.
      const warm = perWorker(p.warmupClients)
      let offset = 0
      await Promise.all(workers.map((w, i) => {
        const args = { port: server.port, count: warm[i], offset, concurrency: lanes, roomSize: 1, tokenPrefix: `${ctx.tokenPrefix()}-warm` }
        offset += warm[i]
        return w.request('connect', args, 60000)
      }))
      await Promise.all(workers.map((w) => w.request('close', {}, 10000)))
      await ctx.waitConnections(server, 0, 10000)

      const counts = perWorker(p.clients)
      const startAt = nowMicros() + 200000
      const stopProfile = await ctx.profile(server, workers)
      const u0 = await server.usage()
      const w0 = await Promise.all(workers.map((w) => w.request('mark')))
      offset = 0
      const tokenPrefix = ctx.tokenPrefix()
      const pending = Promise.all(workers.map((w, i) => {
        const args = { port: server.port, count: counts[i], offset, concurrency: lanes, roomSize: 1, tokenPrefix, startAt }
        offset += counts[i]
        return w.request('connect', args, 120000)
      }))
      await sleep(Math.max(0, (startAt - nowMicros()) / 1000))
      const m0 = machineCpu()
      const results = await pending
      const m1 = machineCpu()
      const u1 = await server.usage()
      await stopProfile()

      const t0 = Math.min(...results.map((r) => r.t0))
      const t1 = Math.max(...results.map((r) => r.t1))
      const ok = results.reduce((a, r) => a + r.ok, 0)
      const failed = results.reduce((a, r) => a + r.failed, 0)
      const lat = results.flatMap((r) => r.lat)
      const wall = t1 - t0
      // CPU over the connect burst only: the server's idle wait before startAt is near zero.
      const serverCpu = cpuPercent(u0.cpu, u1.cpu, wall)
      const workerCpu = results.map((r, i) => cpuPercent(w0[i].cpu, r.cpu, r.t1 - w0[i].t))
      const machine = machinePercent(m0, m1, ctx.cores)
      return {
        values: {
          connectionsPerSec: failed === 0 ? (ok * 1e6) / wall : null,
          connectionsPerCpuSec: failed === 0 && serverCpu > 0 ? (ok * 1e6) / wall / (serverCpu / 100) : null,
          p50: percentile(lat, 50) / 1000,
          p99: percentile(lat, 99) / 1000
        },
        cpu: {
          server: serverCpu,
          workers: workerCpu,
          serverElu: eluPercent(u0.elu, u1.elu),
          workerElu: results.map((r, i) => eluPercent(w0[i].elu, r.elu)),
          machine,
          others: machine === null ? null : Math.max(0, machine - serverCpu - workerCpu.reduce((a, b) => a + b, 0))
        },
        details: {
          clients: p.clients,
          ok,
          failed,
          errors: results.flatMap((r) => r.errors).slice(0, 5),
          seconds: wall / 1e6,
          serverConnections: u1.connections
        }
      }
    } finally {
      await ctx.stopWorkers(workers)
      await server.close()
    }
  }
}
