// One node of the deploy scenario (bench/deploy.mjs): Fastify + the built plugin over Redis,
// history in every room. Every 100 ms it reports its connections, the upgrades it accepted and
// the worst event-loop delay of those 100 ms. On command it publishes to the rooms at a steady
// rate (counting what it sent per room), and stops: with fastify.close() or with a drain first.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import Fastify from 'fastify'

const { default: wsRooms } = await import(new URL('../../dist/esm/index.js', import.meta.url).href)
const { redisAdapter } = await import(new URL('../../dist/esm/adapters/redis.js', import.meta.url).href)

const app = Fastify({ logger: false })
await app.register(wsRooms, {
  authenticate: (token) => (token ? { id: token } : null),
  rateLimit: false,
  maxConnectionsPerIp: 0,
  maxConnections: 0,
  maxPendingAuthentications: 0,
  firstFrameTimeout: 0,
  history: { size: 1000, ttlMs: 300_000 },
  adapter: redisAdapter({ url: process.env.BENCH_REDIS_URL, prefix: process.env.BENCH_REDIS_PREFIX })
})
let upgrades = 0
app.rooms.on('connect', () => { upgrades++ })
await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })

const delay = monitorEventLoopDelay({ resolution: 5 })
delay.enable()
const sampler = setInterval(() => {
  process.send({ sample: { t: Date.now(), connections: app.rooms.stats().connections, upgrades, eldMs: delay.max / 1e6 } })
  delay.reset()
}, 100)

let publisher
const sent = {}
process.on('message', async (msg) => {
  if (msg.cmd === 'publish') {
    // msg.rate messages per second over msg.rooms rooms, round robin, in ticks of 10 ms.
    let n = 0
    let due = 0
    const started = Date.now()
    publisher = setInterval(() => {
      due = Math.floor((Date.now() - started) * msg.rate / 1000)
      while (n < due) {
        const room = `h-${n % msg.rooms}`
        const seq = sent[room] = (sent[room] ?? 0) + 1
        app.rooms.broadcast(room, { type: 'chat', user: { id: 'publisher' }, text: String(seq) }).catch(() => {})
        n++
      }
    }, 10)
  } else if (msg.cmd === 'stopPublish') {
    clearInterval(publisher)
    process.send({ rid: msg.rid, sent })
  } else if (msg.cmd === 'stop') {
    const started = Date.now()
    if (msg.overMs !== undefined) await app.rooms.drain({ overMs: msg.overMs })
    await app.close()
    process.send({ rid: msg.rid, tookMs: Date.now() - started })
  } else if (msg.cmd === 'exit') {
    clearInterval(sampler)
    process.exit(0)
  }
})
process.send({ ready: app.server.address().port, nodeId: app.rooms.nodeId })
