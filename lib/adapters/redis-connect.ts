// Opening and closing the Redis adapter's connections; what they do while open is redis-link.ts's.
// Opening either succeeds within the connect bound (redis-waits.ts) or fails `register` with an
// error naming the option, leaving nothing open. Closing never waits longer than the close bound
// per step: a frozen Redis must not hold up the application's shutdown.
import { Redis, type Cluster, type RedisOptions } from 'ioredis'
import { settlesWithin, withTimeout } from '../async.js'
import { InvalidOptionError } from '../errors.js'
import type { RedisParams } from './redis-options.js'
import { ShardedSubscriptions, type SubscriptionsLink } from './redis-subscriptions.js'

/** The longest wait between two reconnection attempts. */
export const RECONNECT_MAX_MS = 2000

export interface ServerConnections {
  /** Publishes and runs scripts. */
  pub: Redis
  /** Subscribes (a connection in subscriber mode takes no other command). */
  sub: Redis
  /** We made `pub` (from `url`), so we close it; a client the application gave us stays open. */
  ownsPublisher: boolean
}

function noop (): void {}

/** Connect `conn` if it is not yet; reject at its first failed attempt. */
async function connect (conn: Redis | Cluster): Promise<void> {
  if (conn.status === 'ready') return
  if (conn.status === 'wait') {
    await conn.connect()
    return
  }
  await new Promise<void>((resolve, reject) => {
    const ready = (): void => { conn.off('close', fail); resolve() }
    const fail = (): void => { conn.off('ready', ready); reject(new Error('Connection is closed.')) }
    conn.once('ready', ready)
    conn.once('close', fail)
  })
}

/** Resolves when `conn` will not reconnect any more (its socket is closed). */
function ended (conn: Redis | Cluster): Promise<void> {
  if (conn.status === 'end') return Promise.resolve()
  return new Promise((resolve) => conn.once('end', () => resolve()))
}

/**
 * Whether `conn` has a socket to close: one waiting to reconnect has none, and ioredis ends it
 * on disconnect() without an 'end' event (nothing to wait for).
 */
function hasSocket (conn: Redis | Cluster): boolean {
  return conn.status === 'connecting' || conn.status === 'connect' || conn.status === 'ready'
}

/** One server: the given client (or a new connection to `url`) publishes, a duplicate subscribes to `allChannel`. */
export async function connectServer (params: RedisParams, nodeId: string, allChannel: string, waitMs: number): Promise<ServerConnections> {
  const given = params.client
  const optionName = given !== undefined ? 'redisAdapter.client' : 'redisAdapter.url'
  let pub: Redis | undefined
  let sub: Redis | undefined
  let ownsPublisher = false
  let lastError: Error | undefined
  const remember = (err: Error): void => { lastError ??= err }
  try {
    if (given !== undefined) {
      if (given.status === 'end' || given.status === 'close') throw new Error('the client is closed')
      pub = given as Redis
    } else {
      pub = new Redis(params.url, {
        lazyConnect: true,
        // Never queue: what cannot be sent now is counted as dropped, not delivered late.
        enableOfflineQueue: false,
        // A command in flight when the connection drops fails at once instead of being replayed.
        maxRetriesPerRequest: 0,
        autoResubscribe: false,
        retryStrategy: (times: number) => Math.min(100 * 2 ** (times - 1), RECONNECT_MAX_MS),
        connectionName: `fastify-ws-rooms-${nodeId}-pub`
      })
      ownsPublisher = true
    }
    const subOptions: Partial<RedisOptions> = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Resubscribing is ours: we know what the node needs now, not what it needed before the outage.
      autoResubscribe: false,
      connectionName: `fastify-ws-rooms-${nodeId}-sub`
    }
    sub = pub.duplicate(subOptions) as Redis
    pub.on('error', remember)
    sub.on('error', remember)
    const [pubConn, subConn] = [pub, sub]
    // A frozen Redis accepts the connection (its kernel does) and answers nothing.
    await withTimeout((async () => {
      await Promise.all([connect(pubConn), connect(subConn)])
      await subConn.subscribe(allChannel)
      await pubConn.ping()
    })(), waitMs, 'Redis')
  } catch (err) {
    pub?.off('error', remember)
    sub?.off('error', remember)
    sub?.disconnect()
    if (ownsPublisher) pub?.disconnect()
    const where = given !== undefined ? '' : ` at ${new URL(params.url).host}`
    const reason = lastError?.message ?? (err as Error).message
    throw new InvalidOptionError(optionName, `could not connect to Redis${where}: ${reason}`)
  }
  pub.off('error', remember)
  sub.off('error', remember)
  return { pub, sub, ownsPublisher }
}

/** A Cluster: it publishes and runs scripts itself; the subscriptions, per master, are started here. */
export async function connectCluster (cluster: Cluster, allChannel: string, link: SubscriptionsLink,
  options: { connectionName: string, reconcileMs: number }, waitMs: number): Promise<ShardedSubscriptions> {
  let lastError: Error | undefined
  const remember = (err: Error): void => { lastError ??= err }
  cluster.on('error', remember)
  const shards = new ShardedSubscriptions(cluster, allChannel, link, options)
  try {
    if (cluster.status === 'end' || cluster.status === 'close') throw new Error('the client is closed')
    await withTimeout((async () => {
      await connect(cluster)
      await shards.start()
      await cluster.ping()
    })(), waitMs, 'Redis')
  } catch (err) {
    shards.close()
    throw new InvalidOptionError('redisAdapter.client', `could not connect to the Redis Cluster: ${lastError?.message ?? (err as Error).message}`)
  } finally {
    cluster.off('error', remember)
  }
  return shards
}

/**
 * Close: the subscriber at once, then `leave` (this node's presence out of Redis now rather than
 * after presenceTtl), then the publisher when it is ours. Each step waits at most `closeMs`.
 */
export async function disconnect (pub: Redis | Cluster, sub: Redis | undefined, ownsPublisher: boolean,
  leave: (pub: Redis | Cluster) => Promise<void>, closeMs: number): Promise<void> {
  sub?.on('error', noop)
  const subEnded = sub !== undefined && hasSocket(sub) ? ended(sub) : undefined
  sub?.disconnect()
  if (pub.status === 'ready') await settlesWithin(leave(pub), closeMs)
  if (ownsPublisher) {
    pub.on('error', noop)
    const pubEnded = hasSocket(pub) ? ended(pub) : undefined
    if (pub.status === 'ready') {
      if (!await settlesWithin(pub.quit(), closeMs)) pub.disconnect()
    } else {
      pub.disconnect()
    }
    if (pubEnded !== undefined) await settlesWithin(pubEnded, closeMs)
  }
  if (subEnded !== undefined) await settlesWithin(subEnded, closeMs)
}
