// Publications per second through the Redis adapter: one Redis server, then a Redis Cluster of
// three masters (sharded pub/sub), with rooms spread over the slots. Two plugin nodes (built
// package) in this process: a publisher node calls `fastify.rooms.broadcast` round-robin over the
// rooms, a receiver node has one WebSocket client in every room, and a publication counts once it
// reached that client. Each Redis process's CPU is read from /proc over the measurement window.
//
// On a small machine the bench process itself is usually the limit, not Redis; so besides the
// measured rate the table shows each Redis process's CPU share and the rate the busiest Redis
// process could carry at one full core ("capacity"): on one server that process carries every
// publication, in a cluster each master carries the rooms of its slots.
//
//   npm run build && node bench/redis-cluster.mjs [--rooms 300] [--seconds 5] [--window 2000]
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import WebSocket from 'ws'

const { values: flags } = parseArgs({
  options: {
    rooms: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '5' },
    window: { type: 'string', default: '2000' }
  }
})
const ROOMS = Number(flags.rooms)
const MEASURE_MS = Number(flags.seconds) * 1000
const WINDOW = Number(flags.window)
const TICK_HZ = 100 // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux

const { default: wsRooms } = await import(new URL('../dist/esm/index.js', import.meta.url).href)
const { redisAdapter } = await import(new URL('../dist/esm/adapters/redis.js', import.meta.url).href)

const procs = []
const dir = mkdtempSync(join(tmpdir(), 'bench-redis-cluster-'))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function freePort () {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function redisServer (extra = []) {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' })
  procs.push(proc)
  for (let i = 0; i < 100; i++) {
    const redis = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    redis.on('error', () => {})
    try {
      await redis.connect()
      await redis.ping()
      return { port, pid: proc.pid }
    } catch {
      await sleep(50)
    } finally {
      redis.disconnect()
    }
  }
  throw new Error(`redis-server on ${port} did not start`)
}

async function run (command, args) {
  await new Promise((resolve, reject) => {
    const proc = spawn(command, args, { stdio: 'ignore' })
    proc.once('exit', (code) => code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`)))
  })
}

async function startCluster (masters) {
  const nodes = []
  for (let i = 0; i < masters; i++) {
    const busPort = await freePort()
    nodes.push(await redisServer(['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', join(dir, `nodes-${i}-${busPort}.conf`)]))
  }
  await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'])
  for (;;) {
    const infos = await Promise.all(nodes.map(async ({ port }) => {
      const redis = new Redis({ port })
      try { return await redis.cluster('INFO') } finally { redis.disconnect() }
    }))
    if (infos.every((info) => String(info).includes('cluster_state:ok'))) return nodes
    await sleep(200)
  }
}

function cpuTicks (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime
}

async function plugin (client, prefix) {
  const app = Fastify({ logger: false })
  await app.register(wsRooms, {
    authenticate: (token) => ({ id: token }),
    rateLimit: false,
    maxRoomsPerConnection: ROOMS + 1,
    presenceEvents: 'none',
    adapter: redisAdapter({ client, prefix })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

async function measure (label, makeClient, redisPids) {
  const prefix = `bench-${process.pid}-${label.replace(/\W+/g, '-')}`
  const pubClient = makeClient()
  const subClient = makeClient()
  const publisher = await plugin(pubClient, prefix)
  const receiver = await plugin(subClient, prefix)
  const rooms = Array.from({ length: ROOMS }, (_, i) => `room-${i}`)

  const ws = new WebSocket(`ws://127.0.0.1:${receiver.server.address().port}/ws?token=r`)
  let received = 0
  const joined = new Set()
  ws.on('message', (data) => {
    const frame = data.toString()
    if (frame.startsWith('{"type":"ack"')) joined.add(JSON.parse(frame).id)
    else if (frame.startsWith('{"n"')) received++
  })
  await new Promise((resolve) => ws.once('open', resolve))
  rooms.forEach((room, i) => ws.send(JSON.stringify({ type: 'join', room, id: i })))
  while (joined.size < ROOMS) await sleep(20)

  let sent = 0
  const payload = { n: 1, text: 'x'.repeat(64) }
  const state = { running: true }
  const pump = (async () => {
    while (state.running) {
      while (state.running && sent - received < WINDOW) {
        publisher.rooms.broadcast(rooms[sent % ROOMS], payload)
        sent++
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  await sleep(1000) // warm-up
  const cpu0 = redisPids.map(cpuTicks)
  const received0 = received
  const t0 = performance.now()
  await sleep(MEASURE_MS)
  const elapsed = (performance.now() - t0) / 1000
  const delivered = received - received0
  const cpu = redisPids.map((pid, i) => (cpuTicks(pid) - cpu0[i]) / TICK_HZ / elapsed)
  state.running = false
  await pump
  ws.terminate()
  await publisher.close()
  await receiver.close()
  pubClient.disconnect()
  subClient.disconnect()
  const rate = delivered / elapsed
  const busiest = Math.max(...cpu)
  return { label, rate: Math.round(rate), redisCpu: cpu.map((c) => Math.round(c * 100)), capacity: Math.round(rate / busiest) }
}

const results = []
try {
  const single = await redisServer()
  results.push(await measure('one server', () => new Redis({ port: single.port }), [single.pid]))
  const masters = await startCluster(3)
  results.push(await measure('cluster, 3 masters', () => new Cluster(masters.map(({ port }) => ({ host: '127.0.0.1', port }))), masters.map((m) => m.pid)))
} finally {
  for (const proc of procs) proc.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}

console.log(`rooms ${ROOMS}, ${MEASURE_MS / 1000} s, window ${WINDOW}`)
console.log('| setup | publications/s (measured) | CPU of each Redis process | capacity of the busiest (pub/s at 100 % of a core) |')
console.log('|---|---|---|---|')
for (const r of results) console.log(`| ${r.label} | ${r.rate} | ${r.redisCpu.map((c) => `${c} %`).join(', ')} | ${r.capacity} |`)
console.log(JSON.stringify(results))
