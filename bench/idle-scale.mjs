// Idle connections at scale: server RSS and heap per joined idle connection, and the server's CPU
// while they sit idle with the default pings (every idleTimeout / 2 = 30 s), at N connections per
// process, for the plugin and the tutorial baseline. A process may hold at most `ulimit -n`
// descriptors (20,000 hard on the reference machine), so about 19,900 connections per process is
// the ceiling measured here; docs/performance.md models what lies beyond (more processes).
//
//   npm run build && node bench/idle-scale.mjs [--sizes 10000,19900] [--idle-ms 65000] [--side plugin,baseline]
import { parseArgs } from 'node:util'
import { killAll, startServer, startWorkers, stopWorkers } from './lib/procs.mjs'
import { sleep } from './lib/stats.mjs'

const { values: argv } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,19900' },
    'idle-ms': { type: 'string', default: '65000' },
    side: { type: 'string', default: 'plugin,baseline' },
    'room-size': { type: 'string', default: '10' }
  }
})
const sizes = argv.sizes.split(',').map(Number)
const idleMs = Number(argv['idle-ms'])
const roomSize = Number(argv['room-size'])
const SERVERS = {
  plugin: new URL('./servers/plugin.mjs', import.meta.url),
  baseline: new URL('./baseline/server.mjs', import.meta.url)
}
// One load generator holds at most this many client sockets (its own descriptor limit).
const PER_WORKER = 7000

async function measure (side, clients) {
  const server = await startServer(SERVERS[side], { label: side })
  const workers = await startWorkers(Math.ceil(clients / PER_WORKER))
  try {
    const share = workers.map((_, i) => Math.floor(clients / workers.length) + (i < clients % workers.length ? 1 : 0))
    await sleep(300)
    const before = await server.gc()
    let offset = 0
    const results = await Promise.all(workers.map((w, i) => {
      const args = { port: server.port, count: share[i], offset, concurrency: 32, roomSize, tokenPrefix: `idle${i}` }
      offset += share[i]
      return w.request('connect', args, 600_000)
    }))
    const failed = results.reduce((a, r) => a + r.failed, 0)
    if (failed > 0) throw new Error(`${failed} clients failed to connect: ${results.flatMap((r) => r.errors).slice(0, 3).join('; ')}`)
    await sleep(2000)
    const after = await server.gc()
    // Idle: nothing but the server's pings (and the clients' pongs) for idleMs.
    const u0 = await server.usage()
    await sleep(idleMs)
    const u1 = await server.usage()
    const cpuUs = (u1.cpu.user - u0.cpu.user) + (u1.cpu.system - u0.cpu.system)
    const heap = (m) => m.heapUsed + m.external
    return {
      side,
      clients,
      held: after.connections,
      rssPerConnKiB: (after.mem.rss - before.mem.rss) / clients / 1024,
      heapPerConnKiB: (heap(after.mem) - heap(before.mem)) / clients / 1024,
      rssMiB: after.mem.rss / 1048576,
      idleCpuPercentOfOneCore: 100 * cpuUs / ((u1.t - u0.t)),
      idleMs: (u1.t - u0.t) / 1000
    }
  } finally {
    await stopWorkers(workers)
    await server.close()
  }
}

const rows = []
try {
  for (const clients of sizes) {
    for (const side of argv.side.split(',')) {
      const row = await measure(side, clients)
      rows.push(row)
      process.stdout.write(JSON.stringify(row) + '\n')
    }
  }
} finally {
  killAll()
}
process.stdout.write('\n| side | connections | RSS / conn (KiB) | heap+external / conn (KiB) | RSS (MiB) | idle CPU (% of one core) |\n|---|---|---|---|---|---|\n')
for (const r of rows) {
  process.stdout.write(`| ${r.side} | ${r.held} | ${r.rssPerConnKiB.toFixed(2)} | ${r.heapPerConnKiB.toFixed(2)} | ${r.rssMiB.toFixed(1)} | ${r.idleCpuPercentOfOneCore.toFixed(2)} |\n`)
}
