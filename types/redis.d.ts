// Public types of `fastify-ws-rooms/redis`: the Redis adapter. ioredis is an optional
// peer dependency, needed only by users of this subpath.
import type { Cluster, Redis } from 'ioredis'
import type { RoomsAdapter } from './index.js'

export interface RedisAdapterOptions {
  /**
   * An ioredis `Redis` instance to publish and keep presence with. The adapter subscribes on a
   * `duplicate()` of it, which it closes on `fastify.close()`; the client itself stays yours and
   * stays open. Give either `client` or `url`.
   *
   * An ioredis `Cluster` (Redis 7 or newer) puts the adapter in cluster mode: rooms, users and user
   * commands travel over sharded pub/sub (SPUBLISH / SSUBSCRIBE on the master of each room's slot,
   * through subscriber connections the adapter opens with the Cluster's `redisOptions` and closes on
   * `fastify.close()`), broadcastAll over plain PUBLISH, and every key and channel of one room hashes
   * to one slot. The Cluster stays yours and stays open.
   */
  client?: Redis | Cluster
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://…`. The adapter opens its own two
   * connections and closes both on `fastify.close()`. Default `redis://127.0.0.1:6379`.
   */
  url?: string
  /**
   * Namespace of every channel and key the adapter uses; nodes that should see each other share
   * it. Non-empty, no spaces or control characters. Default `'fastify-ws-rooms'`.
   */
  prefix?: string
  /**
   * Milliseconds after which the members of a node that died without cleaning up (SIGKILL, power
   * loss, network partition) disappear from `members()`. Each node refreshes its heartbeat every
   * `presenceTtl / 4`. A history publish whose reply was lost (Redis went away after receiving
   * it) waits up to `presenceTtl` + 2000 ms for Redis to be back, to answer with what happened.
   * Integer >= 200. Default 10000.
   */
  presenceTtl?: number
}

/**
 * Broadcasts, `broadcastAll`, `sendToUser` and `members()` across every node sharing one Redis
 * (pub/sub plus presence hashes). Bad options, or a Redis that cannot be reached at startup, fail
 * `register` with an error naming the option. While Redis is away, local delivery goes on, one
 * error is logged per outage, and what could not reach other nodes is counted in `stats().dropped`;
 * when Redis is back the adapter resubscribes and re-registers its presence by itself.
 */
export declare function redisAdapter (options?: RedisAdapterOptions): RoomsAdapter
