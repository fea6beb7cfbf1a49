// The measurement shared by the fan-out scenarios: rooms of receivers, publishers sending
// as fast as the slower side allows (see the flow control note in bench/loadgen.mjs),
// a warm-up, then a timed window in which deliveries, latency samples and every process's
// CPU are read. After the window the run checks that every published message reached every
// receiver of its room, so a figure never hides lost frames.
import { cpuPercent, cpuSplit, eluPercent, machineCpu, machinePercent, percentile, sleep } from './stats.mjs'
import { redisCpuSeconds } from './redis-cpu.mjs'

/** The timing every fan-out scenario shares: in-flight window, message size, warm-up, window, setup concurrency. */
export function fanoutTiming (opts) {
  return {
    window: opts.window ?? 8,
    textSize: 48,
    warmupMs: opts.quick ? 500 : 1500,
    measureMs: opts.measureMs ?? (opts.quick ? 2000 : 5000),
    concurrency: 50
  }
}

/**
 * @param {object} ctx     the runner's context (startServer, startWorkers, ...)
 * @param {object} side    the server under test
 * @param {object} p
 * @param {Array<{ room: string, receivers: number, publishers: number, samplers: number }>} p.groups
 *        one entry per (room, worker) share: a group is set up entirely inside one worker
 * @param {number} p.workers        generator processes; group i goes to worker i % workers
 * @param {number} p.window         messages in flight per publisher
 * @param {number} p.textSize       characters of message text
 * @param {number} p.warmupMs
 * @param {number} p.measureMs
 * @param {number} p.concurrency    connections opened at once per worker during setup
 * @param {number} [p.minMessages]  the window lasts until every publisher sent at least this many
 *        messages in it (and at least measureMs; at most maxMeasureMs, default 120 s)
 * @param {number} [p.nodes]        servers to start (default 1); a group's `node` picks its server
 * @param {(node: number) => object} [p.serverEnv]  environment of each server (e.g. a shared Redis)
 * @param {string} [p.redisUrl]     the Redis the servers use: its CPU over the window is reported
 */
export async function measureFanout (ctx, side, p) {
  const nodes = p.nodes ?? 1
  const servers = []
  for (let n = 0; n < nodes; n++) servers.push(await ctx.startServer(side, { env: p.serverEnv?.(n) ?? {} }))
  const server = servers[0]
  const groupsWithPorts = p.groups.map((g) => (g.node === undefined || nodes === 1 ? g : { ...g, port: servers[g.node].port }))
  let workers = []
  try {
    workers = await ctx.startWorkers(p.workers)
    const shares = workers.map(() => [])
    groupsWithPorts.forEach((group, i) => shares[i % workers.length].push(group))
    const setupTimeout = 120000
    const tokenPrefix = ctx.tokenPrefix()
    for (const phase of ['receivers', 'tail']) {
      await Promise.all(workers.map((w, i) => w.request('setup', {
        port: server.port, groups: shares[i], phase, concurrency: p.concurrency, tokenPrefix
      }, setupTimeout)))
    }
    await ctx.settle(workers)

    const before = await Promise.all(workers.map((w) => w.request('mark')))
    await Promise.all(workers.map((w) => w.request('start', { window: p.window, textSize: p.textSize })))
    await sleep(p.warmupMs)

    const stopProfile = await ctx.profile(server, workers)
    const redis0 = p.redisUrl ? await redisCpuSeconds(p.redisUrl) : null
    const m0 = machineCpu()
    const [s0, ...w0] = await Promise.all([server.usage(), ...workers.map((w) => w.request('mark', { samples: 'start' }))])
    const others0 = await Promise.all(servers.slice(1).map((s) => s.usage()))
    await sleep(p.measureMs)
    const windowEnd = Date.now() + (p.maxMeasureMs ?? 120000) - p.measureMs
    while (p.minMessages > 0 && Date.now() < windowEnd) {
      const counts = await Promise.all(workers.map((w) => w.request('progress')))
      if (counts.every((c) => c.least === null || c.least >= p.minMessages)) break
      await sleep(100)
    }
    const [s1, ...w1] = await Promise.all([server.usage(), ...workers.map((w) => w.request('mark', { samples: 'take' }))])
    const others1 = await Promise.all(servers.slice(1).map((s) => s.usage()))
    const m1 = machineCpu()
    const redis1 = p.redisUrl ? await redisCpuSeconds(p.redisUrl) : null
    await stopProfile()

    await Promise.all(workers.map((w) => w.request('stop', {}, 15000)))
    await ctx.settle(workers)
    const after = await Promise.all(workers.map((w) => w.request('mark')))

    let deliveriesPerSec = 0
    let publishedInWindow = 0
    const workerCpu = []
    const workerElu = []
    const latencies = []
    for (let i = 0; i < workers.length; i++) {
      const wall = w1[i].t - w0[i].t
      deliveriesPerSec += ((w1[i].frames - w0[i].frames) * 1e6) / wall
      publishedInWindow += w1[i].published - w0[i].published
      workerCpu.push(cpuPercent(w0[i].cpu, w1[i].cpu, wall))
      workerElu.push(eluPercent(w0[i].elu, w1[i].elu))
      for (const v of w1[i].samples) latencies.push(v)
    }
    const serverWall = s1.t - s0.t
    // With several nodes, "server CPU" is all of them together.
    const serverCpu = cpuPercent(s0.cpu, s1.cpu, serverWall) +
      others0.reduce((sum, u0, i) => sum + cpuPercent(u0.cpu, others1[i].cpu, others1[i].t - u0.t), 0)

    // Every message a publisher sent reaches every receiver of its room (receivers never publish).
    const receiversByRoom = new Map()
    for (const g of p.groups) receiversByRoom.set(g.room, (receiversByRoom.get(g.room) ?? 0) + g.receivers)
    let expected = 0
    let published = 0
    let received = 0
    for (let i = 0; i < workers.length; i++) {
      received += after[i].frames - before[i].frames
      for (const [room, n] of Object.entries(after[i].publishedByRoom)) {
        const sent = n - (before[i].publishedByRoom[room] ?? 0)
        published += sent
        expected += sent * (receiversByRoom.get(room) ?? 0)
      }
    }
    const closes = {}
    for (const m of after) {
      for (const [code, n] of Object.entries(m.closes)) closes[code] = (closes[code] ?? 0) + n
    }

    const writesPerSec = writeRate([s0, ...others0], [s1, ...others1])
    const machine = machinePercent(m0, m1, ctx.cores)
    const ours = serverCpu + workerCpu.reduce((a, b) => a + b, 0)
    const cpu = {
      server: serverCpu,
      serverSplit: cpuSplit(s0.cpu, s1.cpu, serverWall),
      workers: workerCpu,
      serverElu: eluPercent(s0.elu, s1.elu),
      workerElu,
      machine,
      others: machine === null ? null : Math.max(0, machine - ours)
    }
    return {
      values: {
        deliveriesPerSec,
        // what one second of server CPU delivers: robust to other processes taking cores
        deliveriesPerCpuSec: serverCpu > 0 ? deliveriesPerSec / (serverCpu / 100) : null,
        p50: latencies.length > 0 ? percentile(latencies, 50) / 1000 : null,
        p99: latencies.length > 0 ? percentile(latencies, 99) / 1000 : null,
        // How many frames a write system call carries (acks and IPC writes count as writes), and
        // the server CPU per write: a delivery costs mostly its share of one write.
        deliveriesPerWrite: writesPerSec > 0 ? deliveriesPerSec / writesPerSec : null,
        cpuPerWriteUs: writesPerSec > 0 ? (serverCpu / 100) * 1e6 / writesPerSec : null,
        // Redis's CPU per published message over the window (scenarios over Redis only)
        redisCpuPerMessageUs: redis0 !== null && redis1 !== null && publishedInWindow > 0 ? ((redis1 - redis0) * 1e6) / publishedInWindow : null
      },
      cpu,
      details: {
        published,
        windowMs: (s1.t - s0.t) / 1000,
        expectedDeliveries: expected,
        receivedDeliveries: received,
        lost: expected - received,
        latencySamples: latencies.length,
        unexpectedCloses: closes,
        serverRssMB: s1.mem.rss / 1048576
      }
    }
  } finally {
    await ctx.stopWorkers(workers)
    for (const s of servers) await s.close()
  }
}

/** The table rows for deliveriesPerWrite and cpuPerWriteUs, shared by the fan-out scenarios. */
export const writeMetrics = [
  { key: 'deliveriesPerWrite', label: 'deliveries per write system call', better: 'higher', decimals: 1 },
  { key: 'cpuPerWriteUs', label: 'server CPU per write system call (µs)', better: 'lower', decimals: 1 }
]

/** Write system calls per second of the server processes over the window (0 without /proc). */
function writeRate (before, after) {
  let writesPerSec = 0
  for (let i = 0; i < before.length; i++) {
    if (before[i].writes === null || after[i].writes === null) return 0
    writesPerSec += ((after[i].writes - before[i].writes) * 1e6) / (after[i].t - before[i].t)
  }
  return writesPerSec
}
