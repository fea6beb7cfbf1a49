// Redis's own CPU (INFO cpu: used_cpu_sys + used_cpu_user, seconds, the main process and its
// threads), read before and after a measurement window, so a scenario over Redis can report what
// Redis spent per message. It is the whole Redis server's: on a Redis other programs use too, their
// commands count as well (point BENCH_REDIS_URL at a Redis of the bench's own for a clean figure).
import { Redis } from 'ioredis'

/** Seconds of CPU the Redis at `url` used so far, or null when it cannot be read. */
export async function redisCpuSeconds (url) {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false })
  try {
    await redis.connect()
    const info = await redis.info('cpu')
    const field = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1])
    const total = field('used_cpu_sys') + field('used_cpu_user')
    return Number.isFinite(total) ? total : null
  } catch {
    return null
  } finally {
    redis.disconnect()
  }
}
