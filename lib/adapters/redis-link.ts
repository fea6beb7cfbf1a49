// The Redis adapter's connections, and whether Redis is there.
//
// One server: one connection publishes and runs scripts, a duplicate subscribes. Redis keeps one
// connection's publications in order, so one publisher's messages arrive in order everywhere.
// Redis Cluster: publications and scripts go through the user's Cluster (each script touches one
// room's slot; room and user channels use SPUBLISH, which reaches the shard owning the channel),
// and subscriptions through redis-subscriptions.ts, one subscriber per master.
//
// Outages. Redis going away (a connection closed) or stalling (a heartbeat unanswered for two
// heartbeats, presenceTtl / 2) starts an outage: one log line; from then on publications are
// counted as dropped instead of queued (a message delivered late would be out of its time), and
// callers do not wait for Redis. The outage ends when both connections are ready and resynchronised:
// the subscriber has every channel the node needs again, presence is written again (Redis may have
// restarted empty), and the node's history rooms were told to check their position, since messages
// may have been missed meanwhile. One line is logged then. How long a call made before the heartbeat
// noticed a frozen Redis may wait is in redis-waits.ts.
import type { Cluster, Redis } from 'ioredis'
import type { AdapterNode } from '../../types/index.js'
import { settlesWithin } from '../async.js'
import { connectCluster, connectServer, disconnect, RECONNECT_MAX_MS } from './redis-connect.js'
import { KeyNames } from './redis-keys.js'
import type { RedisParams } from './redis-options.js'
import type { ShardedSubscriptions } from './redis-subscriptions.js'
import { heartbeatMs, type Wait, waitMs } from './redis-waits.js'

/** Channels one SUBSCRIBE carries when resubscribing many at once. */
const SUBSCRIBE_BATCH = 1000

/** What the link needs from the side that knows the channels (the bus). */
export interface LinkChannels {
  /** A publication arrived on a subscribed channel. */
  receive (channel: string, message: string): void
  /** Every channel this node needs now: a subscriber back from a reconnect has none. */
  channels (): string[]
  /** For the "Redis is back" line. */
  subscribed (): { rooms: number, users: number }
}

/** What the link needs from presence, at the moments only the link sees. */
export interface LinkPresence {
  /** Each heartbeat, with the command connection ready: renew this node's leases. */
  beat (pub: Redis | Cluster): void
  /** Some of this node's leaves could not reach Redis. */
  readonly hasDirtyRooms: boolean
  /** After a reconnect: write this node's presence again. */
  restore (pub: Redis | Cluster): Promise<void>
  /** On close: take this node's members out of the cluster's view now, not after presenceTtl. */
  leaveAll (pub: Redis | Cluster): Promise<void>
}

function noop (): void {}

export class RedisLink {
  readonly node: AdapterNode
  readonly keys: KeyNames
  readonly presenceTtl: number
  /** PUBLISH on one server, SPUBLISH on a Cluster (set by open). */
  publishCommand: 'PUBLISH' | 'SPUBLISH' = 'PUBLISH'
  /**
   * How long a history publish whose reply was lost waits for Redis to learn its outcome: a Redis
   * back within presenceTtl has been reconnected to by then.
   */
  readonly inDoubtWaitMs: number

  private readonly params: RedisParams
  private readonly heartbeatMs: number
  private pub: Redis | Cluster | undefined
  private sub: Redis | undefined
  /** Cluster mode: the sharded subscriptions (there is no `sub` connection then). */
  private shards: ShardedSubscriptions | undefined
  private ownsPublisher = false
  private bus: LinkChannels | undefined
  private presence: LinkPresence | undefined

  private outage: { since: number, dropped: number } | undefined
  private isStalled = false
  private heartbeatPending = false
  /** Ticks that found the previous heartbeat still unanswered. */
  private missedBeats = 0
  private heartbeat: NodeJS.Timeout | undefined
  /** Both connections resynchronised (resubscribed / presence re-registered) since they last closed. */
  private pubSynced = false
  private subSynced = false
  private isClosed = false
  /** In-doubt history publishes waiting for Redis to be back. */
  private readonly upWaiters = new Set<(up: boolean) => void>()
  private readonly listeners: Array<[Redis | Cluster, string, (...args: any[]) => void]> = []

  constructor (params: RedisParams, node: AdapterNode) {
    this.params = params
    this.node = node
    this.keys = new KeyNames(params.prefix)
    this.presenceTtl = params.presenceTtl
    this.heartbeatMs = heartbeatMs(params.presenceTtl)
    this.inDoubtWaitMs = params.presenceTtl + RECONNECT_MAX_MS
  }

  /** How long an operation may wait for Redis (redis-waits.ts says what each does then). */
  waitMs (wait: Wait): number {
    return waitMs(wait, this.params.presenceTtl)
  }

  /** No answer to the heartbeat for two heartbeats: calls do not wait for Redis. */
  get stalled (): boolean { return this.isStalled }
  get closed (): boolean { return this.isClosed }

  // ---- opening ----

  /** Connect (and subscribe the channel every node hears); rejects, with nothing left open, when Redis cannot be reached in time. */
  async open (bus: LinkChannels, presence: LinkPresence): Promise<void> {
    this.bus = bus
    this.presence = presence
    const given = this.params.client
    if (given !== undefined && given.isCluster) return await this.openCluster(given as Cluster, bus)
    const { pub, sub, ownsPublisher } = await connectServer(this.params, this.node.nodeId, this.keys.all, this.waitMs('connect'))
    this.pub = pub
    this.sub = sub
    this.ownsPublisher = ownsPublisher
    this.pubSynced = true
    this.subSynced = true
    this.listen(sub, 'message', (channel: string, message: string) => bus.receive(channel, message))
    this.listen(pub, 'ready', () => { this.restorePresence() })
    this.listen(sub, 'ready', () => { this.resubscribe() })
    this.listen(pub, 'close', () => { this.pubSynced = false; this.down('the publishing connection closed') })
    this.listen(sub, 'close', () => { this.subSynced = false; this.down('the subscribing connection closed') })
    this.listen(pub, 'error', (err: Error) => this.down('connection error', err))
    this.listen(sub, 'error', (err: Error) => this.down('connection error', err))
    this.startHeartbeat()
  }

  /** Cluster mode: publish and run scripts through the user's Cluster, subscribe per shard. */
  private async openCluster (cluster: Cluster, bus: LinkChannels): Promise<void> {
    this.publishCommand = 'SPUBLISH'
    this.shards = await connectCluster(cluster, this.keys.all, {
      receive: (channel, message) => bus.receive(channel, message),
      lost: (reason, err) => { this.subSynced = false; this.down(reason, err) },
      restored: () => {
        this.subSynced = true
        // What was published while a channel had no subscription is read back from history streams.
        this.node.resyncHistory()
        this.maybeUp()
      }
    }, { connectionName: `fastify-ws-rooms-${this.node.nodeId}-sub`, reconcileMs: this.heartbeatMs }, this.waitMs('connect'))
    this.pub = cluster
    this.pubSynced = true
    this.subSynced = true
    this.listen(cluster, 'ready', () => { this.restorePresence() })
    this.listen(cluster, 'close', () => { this.pubSynced = false; this.down('the cluster connection closed') })
    this.listen(cluster, 'error', (err: Error) => this.down('connection error', err))
    this.startHeartbeat()
  }

  private listen (conn: Redis | Cluster, event: string, fn: (...args: any[]) => void): void {
    conn.on(event, fn)
    this.listeners.push([conn, event, fn])
  }

  private startHeartbeat (): void {
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs)
    this.heartbeat.unref()
  }

  // ---- closing ----

  /** Stop everything; this node's presence leaves Redis first, then the connections we opened close. */
  async close (): Promise<void> {
    if (this.isClosed) return
    this.isClosed = true
    clearInterval(this.heartbeat)
    for (const resolve of [...this.upWaiters]) resolve(false)
    for (const [conn, event, fn] of this.listeners) conn.off(event, fn)
    this.listeners.length = 0
    this.shards?.close()
    const { pub, presence } = this
    if (pub === undefined || presence === undefined) return
    await disconnect(pub, this.sub, this.ownsPublisher, async (conn) => await presence.leaveAll(conn), this.waitMs('close'))
  }

  // ---- sending and subscribing ----

  /** The command connection when it can take commands now. */
  ready (): Redis | Cluster | undefined {
    const pub = this.pub
    return pub !== undefined && !this.isClosed && pub.status === 'ready' ? pub : undefined
  }

  /** The command connection when a publication can go out now (never queue one: it would arrive out of its time). */
  writable (): Redis | Cluster | undefined {
    return this.isStalled ? undefined : this.ready()
  }

  /**
   * Hand `message` to Redis for `channel`; undefined when it cannot go out now. On a Cluster, room
   * and user channels are sharded; broadcastAll's stays plain pub/sub, which reaches every node.
   */
  publish (channel: string, message: string): Promise<unknown> | undefined {
    const pub = this.writable()
    if (pub === undefined) return undefined
    return this.shards !== undefined && channel !== this.keys.all ? pub.spublish(channel, message) : pub.publish(channel, message)
  }

  /**
   * Resolves once Redis confirmed the subscription, so whatever is published after reaches us.
   * During an outage it resolves at once: the channel is subscribed again when Redis is back.
   */
  async subscribe (channel: string): Promise<void> {
    if (this.isClosed) return
    if (this.shards !== undefined) {
      const done = this.shards.add(channel)
      if (!this.isStalled) await settlesWithin(done, this.waitMs('subscribe'))
      return
    }
    const sub = this.sub
    if (sub === undefined || sub.status !== 'ready') return
    const done = sub.subscribe(channel).catch((err: Error) => { this.down('a subscribe failed', err) })
    // A stalled Redis will run the SUBSCRIBE when it wakes up; do not hold the join until then.
    if (!this.isStalled) await settlesWithin(done, this.waitMs('subscribe'))
  }

  unsubscribe (channel: string): void {
    if (this.shards !== undefined) {
      this.shards.remove(channel)
      return
    }
    const sub = this.sub
    if (sub === undefined || this.isClosed || sub.status !== 'ready') return
    sub.unsubscribe(channel).catch(noop) // after a reconnect only what is still needed is resubscribed
  }

  /** A publication that could not leave this node: counted in stats().dropped, and in the outage's tally. */
  drop (): void {
    this.node.countDropped(1)
    if (this.outage !== undefined) this.outage.dropped++
  }

  // ---- outages ----

  down (reason: string, err?: Error): void {
    if (this.isClosed || this.outage !== undefined) return
    this.outage = { since: Date.now(), dropped: 0 }
    this.node.log.error({ err, prefix: this.params.prefix },
      `redis adapter: Redis unavailable (${reason}); local delivery goes on, messages to other nodes are counted as dropped until it is back`)
  }

  private maybeUp (): void {
    if (this.isClosed || this.outage === undefined) return
    if (!this.pubSynced || !this.subSynced || this.isStalled) return
    if (this.pub?.status !== 'ready') return
    if (this.shards !== undefined ? !this.shards.healthy : this.sub?.status !== 'ready') return
    const { since, dropped } = this.outage
    this.outage = undefined
    const { rooms, users } = this.bus?.subscribed() ?? { rooms: 0, users: 0 }
    this.node.log.info({ prefix: this.params.prefix, downMs: Date.now() - since, dropped, rooms, users },
      'redis adapter: Redis is back; rooms and users resubscribed, presence re-registered')
    for (const resolve of [...this.upWaiters]) resolve(true)
  }

  /** Resolves true once no outage is on and publications can go out, false after `ms` or on close. */
  whenUp (ms: number): Promise<boolean> {
    if (this.isClosed || ms <= 0) return Promise.resolve(false)
    if (this.outage === undefined && this.writable() !== undefined) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (up: boolean): void => {
        clearTimeout(timer)
        this.upWaiters.delete(done)
        resolve(up)
      }
      const timer = setTimeout(done, ms, false)
      this.upWaiters.add(done)
    })
  }

  /** Heartbeat: notice a Redis that stopped answering; renew our presence leases. */
  private beat (): void {
    const pub = this.pub
    if (pub === undefined || this.isClosed) return
    if (this.heartbeatPending) {
      // Two ticks, not one: a blocked event loop runs a late tick before it reads the late reply.
      if (++this.missedBeats >= 2 && !this.isStalled) {
        this.isStalled = true
        this.down(`no answer to a heartbeat for ${this.missedBeats * this.heartbeatMs} ms`)
      }
      return
    }
    if (pub.status !== 'ready') return
    this.heartbeatPending = true
    this.presence?.beat(pub)
    pub.ping().then(() => {
      this.heartbeatPending = false
      this.missedBeats = 0
      const wasStalled = this.isStalled
      this.isStalled = false
      // After a stall, messages may have been lost on the way: have history rooms check their position.
      if (wasStalled) this.node.resyncHistory()
      if (this.presence?.hasDirtyRooms === true) this.restorePresence()
      else this.maybeUp()
    }, (err: Error) => {
      this.heartbeatPending = false
      this.missedBeats = 0
      this.isStalled = false
      this.down('heartbeat failed', err)
    })
  }

  /** After a reconnect: our presence written again (Redis may have restarted empty). */
  private restorePresence (): void {
    const pub = this.ready()
    if (pub === undefined || this.presence === undefined) return
    this.presence.restore(pub).then(() => {
      this.pubSynced = true
      this.node.resyncHistory()
      this.maybeUp()
    }, (err: Error) => this.down('could not re-register presence', err))
  }

  /** After the subscriber reconnected: every channel this node needs now. */
  private resubscribe (): void {
    const sub = this.sub
    if (sub === undefined || this.bus === undefined || this.isClosed || sub.status !== 'ready') return
    const channels = this.bus.channels()
    const done: Array<Promise<unknown>> = []
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) done.push(sub.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH)))
    Promise.all(done).then(() => {
      this.subSynced = true
      // What was published while we were away is read back from the history rooms' streams.
      this.node.resyncHistory()
      this.maybeUp()
    }, (err: Error) => this.down('could not resubscribe', err))
  }
}
