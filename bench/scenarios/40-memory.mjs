// Server memory per idle joined connection: RSS after a full GC with N clients connected and
// joined (rooms of 10), minus RSS after a full GC before they came, divided by N. The server
// runs with --expose-gc and collects on request; a warm-up round of clients comes and goes
// first so code compiled on the first connection is not charged to the N.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { sleep } from '../lib/stats.mjs'

export default {
  name: 'memory',
  title: 'memory per idle connection',
  // nothing runs while memory is read: no need to wait for a quiet machine
  quiet: false,
  metrics: [
    { key: 'rssPerConnKB', label: 'RSS per connection (KB)', better: 'lower', decimals: 1, target: { op: '<=', ratio: 1 } },
    { key: 'heapPerConnKB', label: 'heap+external per conn (KB)', better: 'lower', decimals: 1 }
  ],
  params (opts) {
    return {
      clients: opts.quick ? 1000 : 2000,
      roomSize: 10,
      warmupClients: 200,
      workers: opts.workers,
      concurrency: 64
    }
  },
  async run (ctx, side, p) {
    const server = await ctx.startServer(side)
    let workers = []
    try {
      workers = await ctx.startWorkers(p.workers)
      const share = (total) => workers.map((_, i) => Math.floor(total / workers.length) + (i < total % workers.length ? 1 : 0))
      const lanes = Math.max(1, Math.floor(p.concurrency / workers.length))
      const connectAll = async (total, tokenPrefix) => {
        const counts = share(total)
        let offset = 0
        const results = await Promise.all(workers.map((w, i) => {
          const args = { port: server.port, count: counts[i], offset, concurrency: lanes, roomSize: p.roomSize, tokenPrefix }
          offset += counts[i]
          return w.request('connect', args, 120000)
        }))
        const failed = results.reduce((a, r) => a + r.failed, 0)
        if (failed > 0) throw new Error(`${failed} clients failed to connect: ${results.flatMap((r) => r.errors).slice(0, 3).join('; ')}`)
      }

      await connectAll(p.warmupClients, `${ctx.tokenPrefix()}-warm`)
      await Promise.all(workers.map((w) => w.request('close', {}, 10000)))
      await ctx.waitConnections(server, 0, 10000)
      await sleep(200)
      const g0 = await server.gc()
      const snapshot = async (when) => {
        if (ctx.heapSnapshotDir === null) return
        mkdirSync(ctx.heapSnapshotDir, { recursive: true })
        await server.request('heap-snapshot', { file: join(ctx.heapSnapshotDir, `${ctx.label}-${when}.heapsnapshot`) }, 120000)
      }
      await snapshot('before')

      await connectAll(p.clients, ctx.tokenPrefix())
      const held = await ctx.waitConnections(server, p.clients, 10000)
      await ctx.settle(workers)
      const g1 = await server.gc()
      await snapshot('after')

      const heap = (m) => m.heapUsed + m.external
      return {
        values: {
          rssPerConnKB: (g1.mem.rss - g0.mem.rss) / p.clients / 1024,
          heapPerConnKB: (heap(g1.mem) - heap(g0.mem)) / p.clients / 1024
        },
        // Nothing runs during the measurement; CPU does not limit a memory figure.
        cpu: null,
        details: {
          clients: p.clients,
          serverConnections: held,
          rssBeforeMB: g0.mem.rss / 1048576,
          rssAfterMB: g1.mem.rss / 1048576,
          heapUsedBeforeMB: g0.mem.heapUsed / 1048576,
          heapUsedAfterMB: g1.mem.heapUsed / 1048576,
          heapTotalBeforeMB: g0.mem.heapTotal / 1048576,
          heapTotalAfterMB: g1.mem.heapTotal / 1048576,
          externalBeforeMB: g0.mem.external / 1048576,
          externalAfterMB: g1.mem.external / 1048576
        }
      }
    } finally {
      await ctx.stopWorkers(workers)
      await server.close()
    }
  }
}
