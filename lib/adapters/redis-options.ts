// The Redis adapter's options, checked once when the adapter is created: a bad one fails
// `register` with an error naming it (`redisAdapter.url`, ...), before any connection opens.
import type { Cluster, Redis } from 'ioredis'
import { InvalidOptionError } from '../errors.js'
import { describe } from '../options.js'

const DEFAULT_URL = 'redis://127.0.0.1:6379'
const DEFAULT_PREFIX = 'fastify-ws-rooms'
const DEFAULT_PRESENCE_TTL = 10_000
const KNOWN_OPTIONS = new Set(['client', 'url', 'prefix', 'presenceTtl'])

export interface RedisParams {
  /** A Redis, or a Cluster (then sharded pub/sub: see redis-subscriptions.ts). */
  client: Redis | Cluster | undefined
  url: string
  prefix: string
  presenceTtl: number
}

export function normaliseRedisOptions (input: unknown): RedisParams {
  if (input === null || typeof input !== 'object') {
    throw new InvalidOptionError('redisAdapter', `expected an options object, got ${describe(input)}`)
  }
  const options = input as Record<string, unknown>
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidOptionError(`redisAdapter.${key}`, 'unknown option (known: client, url, prefix, presenceTtl)')
  }
  const { client, url, prefix = DEFAULT_PREFIX, presenceTtl = DEFAULT_PRESENCE_TTL } = options
  if (client !== undefined && url !== undefined) {
    throw new InvalidOptionError('redisAdapter.client', 'pass either `client` or `url`, not both')
  }
  if (client !== undefined) {
    const c = client as Partial<Redis> | null
    if (c === null || typeof c !== 'object' || typeof c.duplicate !== 'function' || typeof c.publish !== 'function' || typeof c.status !== 'string') {
      throw new InvalidOptionError('redisAdapter.client', `expected an ioredis Redis instance or Cluster, got ${describe(client)}`)
    }
  }
  if (url !== undefined) {
    if (typeof url !== 'string') throw new InvalidOptionError('redisAdapter.url', `expected a redis:// or rediss:// URL, got ${describe(url)}`)
    let parsed: URL
    try { parsed = new URL(url) } catch {
      throw new InvalidOptionError('redisAdapter.url', `${describe(url)} is not a URL like "redis://127.0.0.1:6379"`)
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new InvalidOptionError('redisAdapter.url', `expected the redis: or rediss: scheme, got "${parsed.protocol}"`)
    }
  }
  // No braces: keys carry the room in a {hash tag}, which a brace in the prefix would move.
  if (typeof prefix !== 'string' || prefix.length === 0 || /[\s\u0000-\u001f\u007f{}]/.test(prefix)) { // eslint-disable-line no-control-regex
    throw new InvalidOptionError('redisAdapter.prefix', `expected a non-empty string without spaces, braces or control characters, got ${describe(prefix)}`)
  }
  if (typeof presenceTtl !== 'number' || !Number.isSafeInteger(presenceTtl) || presenceTtl < 200) {
    throw new InvalidOptionError('redisAdapter.presenceTtl', `expected an integer number of milliseconds >= 200, got ${describe(presenceTtl)}`)
  }
  return { client: client as Redis | Cluster | undefined, url: (url as string | undefined) ?? DEFAULT_URL, prefix, presenceTtl }
}
