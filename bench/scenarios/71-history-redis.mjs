// The history scenario with the Redis adapter (the Redis at 127.0.0.1:6379 or BENCH_REDIS_URL,
// under a prefix of its own per run): history: { size: 100 } ordered and kept by Redis (plugin
// column) against the same adapter without history (baseline column), one node, 1 room × 1000.
import { historyScenario } from './70-history.mjs'

const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

export default historyScenario('history-redis', 'Redis adapter', () => ({
  BENCH_REDIS_URL: redisUrl,
  BENCH_REDIS_PREFIX: `bench-history-${process.pid}-${Date.now()}`
}), redisUrl)
