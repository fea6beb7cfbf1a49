// Sharded subscriptions on a Redis Cluster (SSUBSCRIBE, Redis 7): one subscriber connection per
// master that serves a channel this node needs, each channel subscribed on the master of its slot,
// one channel per SSUBSCRIBE (never a multi-slot command, which Redis refuses with CROSSSLOT).
// broadcastAll's channel is a plain SUBSCRIBE (plain PUBLISH reaches every node of a cluster) on a
// connection of its own, never one that also SSUBSCRIBEs: Redis 7.0 answers an SUNSUBSCRIBE with the
// number of shard channels left, 0 even while a plain subscription remains, and ioredis takes 0 as
// "subscriber mode over" and stops delivering that connection's messages.
//
// Why not ioredis's own `shardedSubscribers`: it resubscribes by itself after a topology change
// and says nothing of what was lost in between, so a node could not count the loss or have its
// history rooms repair the gap. Here every subscription is confirmed by its master and known by
// connection; what invalidates one is noticed:
// - a subscriber connection closes (its master died, a failover): its channels are lost;
// - a master pushes SUNSUBSCRIBE (its slot moved away; ioredis emits 'moved'): that connection's
//   channels are checked again;
// - the slot map changed (read with CLUSTER SLOTS every `reconcileMs`, and at once after an event):
//   a channel whose slot has a new master is subscribed there, then dropped at the old one.
// A channel that was confirmed, lost and confirmed again is reported through `onRestored`, so the
// adapter resynchronises history rooms (the gap is read back from their streams).
import { Redis, type Cluster, type RedisOptions } from 'ioredis'
import { slotOf } from './redis-slots.js'

/** What the subscriptions tell the adapter's link (redis-link.ts). */
export interface SubscriptionsLink {
  /** A message on a channel this node subscribed to (sharded or the plain broadcastAll one). */
  receive (channel: string, message: string): void
  /** Some channels lost their subscription (a master died, a slot moved); messages may be missing. */
  lost (reason: string, err?: Error): void
  /** Lost channels are subscribed again: what was published meanwhile must be recovered or counted. */
  restored (channels: string[]): void
}

interface Shard {
  readonly key: string
  readonly conn: Redis
  /** Channels SSUBSCRIBEd here and confirmed. */
  readonly channels: Set<string>
}

/** The connection that holds the plain broadcastAll subscription, and nothing else. */
interface PlainSubscriber {
  readonly key: string
  readonly conn: Redis
  /** The SUBSCRIBE in flight, then settled. */
  done: Promise<void>
  confirmed: boolean
}

type SlotsReply = Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>

/** How soon a reconciliation that left channels unplaced (a master down, a failover under way) runs again. */
const RETRY_MS = 200

function noop (): void {}

export class ShardedSubscriptions {
  private readonly cluster: Cluster
  private readonly plainChannel: string
  private readonly link: SubscriptionsLink
  private readonly connectionName: string
  private readonly reconcileMs: number

  /** slot → "host:port" of its master; empty until the first CLUSTER SLOTS. */
  private slots: string[] = []
  private readonly shards = new Map<string, Shard>()
  /** Every sharded channel this node needs. */
  private readonly wanted = new Set<string>()
  /** channel → the shard where it is confirmed. */
  private readonly where = new Map<string, string>()
  /** channel → the shard an SSUBSCRIBE is on its way to, and its confirmation. */
  private readonly pending = new Map<string, { key: string, done: Promise<void> }>()
  /** Channels confirmed once, lost since: reported through `restored` when confirmed again. */
  private readonly lostChannels = new Set<string>()
  private plain: PlainSubscriber | undefined
  /** The plain subscription was confirmed, then lost: reported through `restored` when confirmed again. */
  private plainLost = false
  private timer: NodeJS.Timeout | undefined
  private soon: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private again = false
  private closed = false

  constructor (cluster: Cluster, plainChannel: string, link: SubscriptionsLink, options: { connectionName: string, reconcileMs: number }) {
    this.cluster = cluster
    this.plainChannel = plainChannel
    this.link = link
    this.connectionName = options.connectionName
    this.reconcileMs = options.reconcileMs
  }

  /** Read the slot map and subscribe the plain channel; rejects when the cluster cannot be reached. */
  async start (): Promise<void> {
    await this.refreshSlots()
    await this.subscribePlain()
    this.timer = setInterval(() => { this.reconcile() }, this.reconcileMs)
    this.timer.unref()
  }

  /** Every wanted channel (and the plain one) is confirmed on the master that serves it now. */
  get healthy (): boolean {
    if (this.closed || this.plainLost || this.plain?.confirmed !== true) return false
    for (const channel of this.wanted) if (!this.where.has(channel)) return false
    return this.lostChannels.size === 0
  }

  /**
   * Subscribe `channel` on its master; resolves once confirmed, or at once when that master cannot
   * take it now (the channel stays wanted: the next reconciliation subscribes it).
   */
  async add (channel: string): Promise<void> {
    this.wanted.add(channel)
    this.lostChannels.delete(channel)
    if (this.where.has(channel)) return
    await this.subscribe(channel).catch(noop)
  }

  remove (channel: string): void {
    this.wanted.delete(channel)
    this.lostChannels.delete(channel)
    this.pending.delete(channel)
    const key = this.where.get(channel)
    this.where.delete(channel)
    const shard = key !== undefined ? this.shards.get(key) : undefined
    if (shard === undefined) return
    shard.channels.delete(channel)
    if (shard.conn.status === 'ready') shard.conn.sunsubscribe(channel).catch(noop)
  }

  /** True when `channel`'s message arrived on the connection that holds (or is taking) its subscription. */
  private accepts (shard: Shard, channel: string): boolean {
    return this.where.get(channel) === shard.key || this.pending.get(channel)?.key === shard.key
  }

  // ---- connections ----

  /** A subscriber connection to the node `key` ("host:port"), connecting. */
  private open (key: string, connectionName: string): Redis {
    const cut = key.lastIndexOf(':')
    const given = (this.cluster.options.redisOptions ?? {}) as RedisOptions
    // The slot map has the nodes' own addresses: translate them as the Cluster does (NAT, Docker).
    const natMap = this.cluster.options.natMap as unknown
    const mapped = (typeof natMap === 'function'
      ? natMap(key)
      : (natMap as Record<string, { host: string, port: number }> | undefined)?.[key]) as { host: string, port: number } | undefined
    const conn = new Redis({
      ...given,
      host: mapped?.host ?? key.slice(0, cut),
      port: mapped?.port ?? Number(key.slice(cut + 1)),
      lazyConnect: true,
      // One attempt per connection: when it closes, its channels are re-placed from a fresh slot map.
      retryStrategy: () => null,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      connectionName
    })
    conn.on('error', noop) // the close that follows is what counts
    conn.connect().catch(noop)
    return conn
  }

  private shard (key: string): Shard {
    let shard = this.shards.get(key)
    if (shard !== undefined) return shard
    const conn = this.open(key, this.connectionName)
    shard = { key, conn, channels: new Set() }
    const created = shard
    this.shards.set(key, shard)
    conn.on('smessage', (channel: string, message: string) => {
      if (this.accepts(created, channel)) this.link.receive(channel, message)
    })
    // A master pushed SUNSUBSCRIBE: one of its slots moved away. Check every channel it held.
    conn.on('moved', () => { this.forget(created, 'a slot moved to another master') })
    conn.on('end', () => { this.drop(created) })
    return shard
  }

  /** A connection is gone: its channels are lost until subscribed again elsewhere. */
  private drop (shard: Shard): void {
    if (this.shards.get(shard.key) !== shard) return
    this.shards.delete(shard.key)
    this.forget(shard, `the subscriber connection to ${shard.key} closed`)
    for (const [channel, { key }] of this.pending) if (key === shard.key) this.pending.delete(channel)
  }

  private forget (shard: Shard, reason: string): void {
    if (this.closed) return
    let lost = 0
    for (const channel of shard.channels) {
      if (this.where.get(channel) === shard.key) {
        this.where.delete(channel)
        this.lostChannels.add(channel)
        lost++
      }
    }
    shard.channels.clear()
    if (lost > 0) this.link.lost(reason)
    this.reconcileSoon()
  }

  // ---- subscribing ----

  private async subscribe (channel: string): Promise<void> {
    const key = this.slots[slotOf(channel)]
    if (key === undefined) throw new Error('the slot map is not known yet')
    const inFlight = this.pending.get(channel)
    if (inFlight?.key === key) return await inFlight.done
    const done = this.place(channel, key)
    this.pending.set(channel, { key, done })
    try {
      await done
    } finally {
      if (this.pending.get(channel)?.done === done) this.pending.delete(channel)
    }
  }

  private async place (channel: string, key: string): Promise<void> {
    const shard = this.shard(key)
    try {
      await shard.conn.ssubscribe(channel)
    } catch (err) {
      // MOVED (a stale slot map) or a closed connection: placed again by the next reconciliation.
      this.reconcileSoon(RETRY_MS)
      throw err
    }
    if (this.closed || !this.wanted.has(channel) || this.shards.get(key) !== shard) {
      if (shard.conn.status === 'ready' && !this.wanted.has(channel)) shard.conn.sunsubscribe(channel).catch(noop)
      return
    }
    const before = this.where.get(channel)
    this.where.set(channel, key)
    shard.channels.add(channel)
    // It moved: stop listening at the old master (its slot map may not have caught up yet).
    const old = before !== undefined && before !== key ? this.shards.get(before) : undefined
    if (old !== undefined) {
      old.channels.delete(channel)
      if (old.conn.status === 'ready') old.conn.sunsubscribe(channel).catch(noop)
    }
  }

  /** Subscribe the plain channel on a connection of its own (to any master: PUBLISH reaches every node). */
  private async subscribePlain (): Promise<void> {
    if (this.plain !== undefined) return await this.plain.done
    const key = this.slots.find((k) => k !== undefined)
    if (key === undefined) throw new Error('the cluster serves no slot')
    const conn = this.open(key, `${this.connectionName}-all`)
    const plain: PlainSubscriber = { key, conn, done: Promise.resolve(), confirmed: false }
    this.plain = plain
    // Not waiting for `confirmed`: a message may be parsed before the SUBSCRIBE's promise settles.
    conn.on('message', (channel: string, message: string) => {
      if (this.plain === plain && channel === this.plainChannel) this.link.receive(channel, message)
    })
    conn.on('end', () => { this.dropPlain(plain) })
    plain.done = this.confirmPlain(plain)
    await plain.done
  }

  private async confirmPlain (plain: PlainSubscriber): Promise<void> {
    try {
      await plain.conn.subscribe(this.plainChannel)
    } catch (err) {
      // A closed connection, or a refusal on a live one: a new connection tries again later.
      this.dropPlain(plain, RETRY_MS)
      plain.conn.disconnect()
      throw err
    }
    if (this.plain !== plain) throw new Error(`the subscriber connection to ${plain.key} closed`)
    plain.confirmed = true
  }

  /** The plain subscriber is gone: once it was confirmed, broadcastAll messages may be missing. */
  private dropPlain (plain: PlainSubscriber, retryMs?: number): void {
    if (this.plain !== plain) return
    this.plain = undefined
    if (this.closed) return
    if (plain.confirmed) {
      this.plainLost = true
      this.link.lost(`the subscriber connection to ${plain.key} closed`)
    }
    this.reconcileSoon(retryMs)
  }

  private async refreshSlots (): Promise<void> {
    const reply = await this.cluster.call('CLUSTER', 'SLOTS') as SlotsReply
    const slots: string[] = []
    for (const [from, to, master] of reply) {
      const key = `${String(master[0])}:${Number(master[1])}`
      for (let slot = from; slot <= to; slot++) slots[slot] = key
    }
    this.slots = slots
  }

  // ---- reconciliation ----

  private reconcileSoon (delayMs = 20): void {
    if (this.closed || this.soon !== undefined) return
    this.soon = setTimeout(() => {
      this.soon = undefined
      this.reconcile()
    }, delayMs)
    this.soon.unref()
  }

  /** Bring every subscription in line with the current slot map; runs one at a time. */
  reconcile (): void {
    if (this.closed) return
    if (this.running !== undefined) {
      this.again = true
      return
    }
    this.running = this.reconcileOnce().catch(noop).finally(() => {
      this.running = undefined
      if (this.again) {
        this.again = false
        this.reconcileSoon(RETRY_MS)
      }
    })
  }

  private async reconcileOnce (): Promise<void> {
    await this.refreshSlots()
    const placing: Array<Promise<void>> = []
    for (const channel of this.wanted) {
      if (this.where.get(channel) === this.slots[slotOf(channel)]) continue
      placing.push(this.subscribe(channel).catch(noop))
    }
    if (this.plain?.confirmed !== true) placing.push(this.subscribePlain().catch(noop))
    await Promise.all(placing)
    // Masters that serve nothing this node needs any more.
    for (const shard of this.shards.values()) {
      if (shard.channels.size === 0 && !Array.from(this.pending.values()).some((p) => p.key === shard.key)) {
        this.shards.delete(shard.key)
        shard.conn.disconnect()
      }
    }
    const restored = Array.from(this.lostChannels).filter((channel) => this.where.has(channel))
    for (const channel of restored) this.lostChannels.delete(channel)
    const plainRestored = this.plainLost && this.plain?.confirmed === true
    if (plainRestored) this.plainLost = false
    if (restored.length > 0 || plainRestored) this.link.restored(restored)
    if (!this.healthy) this.reconcileSoon(RETRY_MS)
  }

  close (): void {
    this.closed = true
    clearInterval(this.timer)
    clearTimeout(this.soon)
    for (const shard of this.shards.values()) shard.conn.disconnect()
    this.shards.clear()
    this.plain?.conn.disconnect()
    this.plain = undefined
  }
}
