// The plugin side of the bench: Fastify + fastify-ws-rooms (built package, in-memory adapter)
// with the same trivial token check as the baseline. Only the limits that would refuse the
// bench's own load are changed from the defaults: every client comes from 127.0.0.1 (so the
// per-IP cap is off) and publishers send far more than a chat user would (so the per-
// connection rate limit is off). Everything else, including the idle pings, stays default.
// BENCH_REDIS_URL (with BENCH_REDIS_PREFIX) swaps in the Redis adapter, for multi-node scenarios;
// BENCH_PRESENCE sets presenceEvents (room-fill), BENCH_HISTORY_SIZE turns history on (history),
// BENCH_WRITE_DELAY sets writeDelay (to try other values than the default), BENCH_GRANTS gives
// every session grants (a few exact rooms and prefixes, the bench's rooms matched by the last
// prefix, so each check walks the list), for the grants scenarios.
// Metrics and tracing (scenarios 72-74): BENCH_METRICS=1 turns `metrics` on (its own registry,
// scraped every second, more often than Prometheus would); BENCH_TRACING=1 registers an
// OpenTelemetry tracer provider (every span sampled, batched to an exporter that drops them);
// BENCH_HIDE_OTEL=1 makes @opentelemetry/api impossible to import, as when it is not installed.
import Fastify from 'fastify'
import { serveControl } from './control.mjs'
import { observabilityFromEnv } from '../lib/observability-env.mjs'

await observabilityFromEnv()
let metrics
if (process.env.BENCH_METRICS === '1') {
  const { Registry } = await import('prom-client')
  const registry = new Registry()
  metrics = { registry }
  setInterval(() => { registry.metrics().catch(() => {}) }, 1000).unref()
}

const entry = process.env.BENCH_PLUGIN_ENTRY ?? '../../dist/esm/index.js'
const { default: wsRooms } = await import(new URL(entry, import.meta.url).href)

let adapter
if (process.env.BENCH_REDIS_URL) {
  const { redisAdapter } = await import(new URL(entry.replace(/index\.js$/, 'adapters/redis.js'), import.meta.url).href)
  adapter = redisAdapter({ url: process.env.BENCH_REDIS_URL, prefix: process.env.BENCH_REDIS_PREFIX ?? `bench-${process.pid}` })
}

const app = Fastify({ logger: false })

const BENCH_GRANTS = { lobby: ['join'], announcements: ['join'], 'team:1:*': ['join', 'publish'], 'team:2:*': ['join', 'publish'], 'bench-': ['join'], 'bench-*': ['join', 'publish'] }

await app.register(wsRooms, {
  authenticate: process.env.BENCH_GRANTS
    ? (token) => (token ? { user: { id: token }, grants: BENCH_GRANTS } : null)
    : (token) => (token ? { id: token } : null),
  rateLimit: false,
  maxConnectionsPerIp: 0,
  maxConnections: 0,
  ...(adapter ? { adapter } : {}),
  ...(process.env.BENCH_PRESENCE ? { presenceEvents: process.env.BENCH_PRESENCE } : {}),
  ...(process.env.BENCH_HISTORY_SIZE ? { history: { size: Number(process.env.BENCH_HISTORY_SIZE) } } : {}),
  ...(process.env.BENCH_WRITE_DELAY ? { writeDelay: Number(process.env.BENCH_WRITE_DELAY) } : {}),
  ...(metrics ? { metrics } : {})
})

await app.listen({ port: Number(process.env.BENCH_PORT ?? 0), host: '127.0.0.1', backlog: 4096 })

serveControl({
  port: app.server.address().port,
  connections: () => app.rooms.stats().connections,
  stats: () => app.rooms.stats(),
  close: () => app.close()
})
