// The Redis adapter: carries what the broker publishes to the other nodes over Redis pub/sub, keeps
// cluster-wide presence (redis-presence.ts), orders and keeps history rooms (redis-history.ts), and
// carries user commands. The only module that imports ioredis at runtime.
//
// Bus. One connection publishes and runs scripts, a duplicate subscribes; Redis keeps one
// connection's publications in order, so one publisher's messages arrive in order everywhere.
// Channels (redis-keys.ts): a room's (a node subscribes only while it has local members there), a
// user's (while the user is connected here) and one for broadcastAll. The wire format and the loss
// accounting are in redis-codec.ts. A node drops what it published itself (the broker delivered it
// locally), except history messages: those reach every node, the publisher's too, from Redis.
//
// Faults. Redis going away (connection closed) or stalling (a heartbeat unanswered for two
// intervals, `presenceTtl / 2`) starts an outage: one log line, publications are counted as dropped
// instead of queued, history rooms refuse messages (`unavailable`), joins of plain rooms are not
// held up. When both connections are ready again the adapter resubscribes every room and user it
// has locally, re-registers its presence, has every history room check its position (missed
// messages are read back from the stream), and logs once that Redis is back. A call made before the
// heartbeat noticed a frozen Redis waits no longer than its bound in redis-waits.ts.
//
// Redis Cluster (§12). Given an ioredis `Cluster`, the adapter publishes and runs its scripts through
// it (each script touches one room's slot), uses SPUBLISH for room and user channels, and subscribes
// through redis-subscriptions.ts (SSUBSCRIBE per channel on the master of its slot, reconciled with
// the slot map); broadcastAll stays plain PUBLISH, which a cluster carries to every node.
import { Redis, type Cluster, type RedisOptions } from 'ioredis'
import type {
  AdapterNode, HistoryLimits, PresenceDiff, RoomMember, RoomsAdapter, UserCommand
} from '../../types/index.js'
import type { RedisAdapterOptions } from '../../types/redis.js'
import { NoAnswerError, settlesWithin, withTimeout } from '../async.js'
import { InvalidOptionError } from '../errors.js'
import { decode, parseDiff, SEP, SeqCounter } from './redis-codec.js'
import { RedisHistory } from './redis-history.js'
import { KeyNames } from './redis-keys.js'
import { normaliseRedisOptions, type RedisParams } from './redis-options.js'
import { RedisPresence } from './redis-presence.js'
import { ShardedSubscriptions } from './redis-subscriptions.js'
import { heartbeatMs, type Wait, waitMs } from './redis-waits.js'

/** The longest wait between two reconnection attempts. */
const RECONNECT_MAX_MS = 2000

/** Channels one SUBSCRIBE carries when resubscribing many at once. */
const SUBSCRIBE_BATCH = 1000

export function redisAdapter (options: RedisAdapterOptions = {}): RoomsAdapter {
  // Bad options fail `register` (init), like the plugin's own options, and open nothing before.
  let params: RedisParams | Error
  try {
    params = normaliseRedisOptions(options)
  } catch (err) {
    params = err as Error
  }
  return new RedisAdapter(params)
}

function noop (): void {}

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

class RedisAdapter implements RoomsAdapter {
  private readonly params: RedisParams | Error
  node!: AdapterNode
  keys!: KeyNames
  seq!: SeqCounter
  publishCommand: 'PUBLISH' | 'SPUBLISH' = 'PUBLISH'
  private pub: Redis | Cluster | undefined
  private sub: Redis | undefined
  /** Cluster mode: the sharded subscriptions (there is no `sub` connection then). */
  private shards: ShardedSubscriptions | undefined
  private ownsPublisher = false
  private readonly heartbeatMs: number = 0
  private presence!: RedisPresence
  private historyStore: RedisHistory | undefined

  /** What this node is subscribed to (or will resubscribe to when Redis is back). */
  private readonly rooms = new Set<string>()
  private readonly users = new Set<string>()

  private outage: { since: number, dropped: number } | undefined
  private stalled = false
  private heartbeatPending = false
  /** Ticks that found the previous heartbeat still unanswered. */
  private missedBeats = 0
  private heartbeat: NodeJS.Timeout | undefined
  /** Both connections resynchronised (resubscribed / presence re-registered) since they last closed. */
  private pubSynced = false
  private subSynced = false
  private closed = false
  /** In-doubt history publishes waiting for Redis to be back (redis-history.ts). */
  private readonly upWaiters = new Set<(up: boolean) => void>()
  private readonly listeners: Array<[Redis | Cluster, string, (...args: any[]) => void]> = []

  constructor (params: RedisParams | Error) {
    this.params = params
    if (!(params instanceof Error)) this.heartbeatMs = heartbeatMs(params.presenceTtl)
  }

  /** How long an operation may wait for Redis (redis-waits.ts says what each does then). */
  waitMs (wait: Wait): number {
    return waitMs(wait, this.p.presenceTtl)
  }

  private get p (): RedisParams { return this.params as RedisParams }
  get presenceTtl (): number { return this.p.presenceTtl }
  get historyLimits (): HistoryLimits | undefined { return this.node?.historyLimits }
  get readTimeoutMs (): number { return this.waitMs('historyRead') }
  get publishTimeoutMs (): number { return this.waitMs('historyPublish') }
  /** How long a history publish whose reply was lost waits for Redis to learn its outcome: a Redis back within presenceTtl is reconnected to by then. */
  get inDoubtWaitMs (): number { return this.p.presenceTtl + RECONNECT_MAX_MS }
  get publisherId (): string { return this.node.nodeId }
  get log (): AdapterNode['log'] { return this.node.log }

  /** History rooms are ordered by Redis (set once init has run). */
  get history (): RedisHistory | undefined { return this.historyStore }

  // ---- lifecycle ----

  async init (node: AdapterNode): Promise<void> {
    if (this.params instanceof Error) throw this.params
    if (this.node !== undefined) {
      throw new InvalidOptionError('adapter', 'this redisAdapter() is already in use; create one per Fastify instance')
    }
    if (node.nodeId.length === 0 || node.nodeId.includes(SEP)) throw new Error('redis adapter: the node id must be non-empty and free of NUL')
    this.node = node
    this.keys = new KeyNames(this.p.prefix)
    this.seq = new SeqCounter(node.nodeId)
    this.presence = new RedisPresence(this)
    this.historyStore = new RedisHistory(this)
    const given = this.p.client
    if (given !== undefined && given.isCluster) return await this.initCluster(given as Cluster)
    const optionName = given !== undefined ? 'redisAdapter.client' : 'redisAdapter.url'
    let pub: Redis | undefined
    let sub: Redis | undefined
    let lastError: Error | undefined
    const remember = (err: Error): void => { lastError ??= err }
    try {
      if (given !== undefined) {
        if (given.status === 'end' || given.status === 'close') throw new Error('the client is closed')
        pub = given as Redis
      } else {
        pub = new Redis(this.p.url, {
          lazyConnect: true,
          // Never queue: what cannot be sent now is counted as dropped, not delivered late.
          enableOfflineQueue: false,
          // A command in flight when the connection drops fails at once instead of being replayed.
          maxRetriesPerRequest: 0,
          autoResubscribe: false,
          retryStrategy: (times: number) => Math.min(100 * 2 ** (times - 1), RECONNECT_MAX_MS),
          connectionName: `fastify-ws-rooms-${node.nodeId}-pub`
        })
        this.ownsPublisher = true
      }
      this.pub = pub
      const subOptions: Partial<RedisOptions> = {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        // Resubscribing is ours: we know what the node needs now, not what it needed before the outage.
        autoResubscribe: false,
        connectionName: `fastify-ws-rooms-${node.nodeId}-sub`
      }
      sub = pub.duplicate(subOptions) as Redis
      this.sub = sub
      pub.on('error', remember)
      sub.on('error', remember)
      const [pubConn, subConn] = [pub, sub]
      // A frozen Redis accepts the connection (its kernel does) and answers nothing.
      await withTimeout((async () => {
        await Promise.all([this.connect(pubConn), this.connect(subConn)])
        await subConn.subscribe(this.keys.all)
        await pubConn.ping()
      })(), this.waitMs('connect'), 'Redis')
    } catch (err) {
      pub?.off('error', remember)
      sub?.off('error', remember)
      sub?.disconnect()
      if (this.ownsPublisher) pub?.disconnect()
      this.pub = undefined
      this.sub = undefined
      this.node = undefined as unknown as AdapterNode
      this.ownsPublisher = false
      const where = given !== undefined ? '' : ` at ${new URL(this.p.url).host}`
      const reason = lastError?.message ?? (err as Error).message
      throw new InvalidOptionError(optionName, `could not connect to Redis${where}: ${reason}`)
    }
    pub.off('error', remember)
    sub.off('error', remember)
    this.pubSynced = true
    this.subSynced = true

    this.listen(sub, 'message', (channel: string, message: string) => this.receive(channel, message))
    this.listen(pub, 'ready', () => { this.restorePresence() })
    this.listen(sub, 'ready', () => { this.resubscribe() })
    this.listen(pub, 'close', () => { this.pubSynced = false; this.down('the publishing connection closed') })
    this.listen(sub, 'close', () => { this.subSynced = false; this.down('the subscribing connection closed') })
    this.listen(pub, 'error', (err: Error) => this.down('connection error', err))
    this.listen(sub, 'error', (err: Error) => this.down('connection error', err))
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs)
    this.heartbeat.unref()
  }

  /** Cluster mode: publish and run scripts through the user's Cluster, subscribe per shard. */
  private async initCluster (cluster: Cluster): Promise<void> {
    this.publishCommand = 'SPUBLISH'
    let lastError: Error | undefined
    const remember = (err: Error): void => { lastError ??= err }
    cluster.on('error', remember)
    const shards = new ShardedSubscriptions(cluster, this.keys.all, {
      receive: (channel, message) => this.receive(channel, message),
      lost: (reason, err) => { this.subSynced = false; this.down(reason, err) },
      restored: () => {
        this.subSynced = true
        // What was published while a channel had no subscription is read back from history streams.
        this.node.resyncHistory()
        this.maybeUp()
      }
    }, { connectionName: `fastify-ws-rooms-${this.node.nodeId}-sub`, reconcileMs: this.heartbeatMs })
    try {
      if (cluster.status === 'end' || cluster.status === 'close') throw new Error('the client is closed')
      await withTimeout((async () => {
        await this.connect(cluster)
        await shards.start()
        await cluster.ping()
      })(), this.waitMs('connect'), 'Redis')
    } catch (err) {
      shards.close()
      this.node = undefined as unknown as AdapterNode
      throw new InvalidOptionError('redisAdapter.client', `could not connect to the Redis Cluster: ${lastError?.message ?? (err as Error).message}`)
    } finally {
      cluster.off('error', remember)
    }
    this.pub = cluster
    this.shards = shards
    this.pubSynced = true
    this.subSynced = true
    this.listen(cluster, 'ready', () => { this.restorePresence() })
    this.listen(cluster, 'close', () => { this.pubSynced = false; this.down('the cluster connection closed') })
    this.listen(cluster, 'error', (err: Error) => this.down('connection error', err))
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs)
    this.heartbeat.unref()
  }

  /** Connect `conn` if it is not yet; reject at its first failed attempt. */
  private async connect (conn: Redis | Cluster): Promise<void> {
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

  private listen (conn: Redis | Cluster, event: string, fn: (...args: any[]) => void): void {
    conn.on(event, fn)
    this.listeners.push([conn, event, fn])
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeat)
    for (const resolve of [...this.upWaiters]) resolve(false)
    for (const [conn, event, fn] of this.listeners) conn.off(event, fn)
    this.listeners.length = 0
    const { pub, sub } = this
    this.shards?.close()
    if (pub === undefined || (sub === undefined && this.shards === undefined)) return
    sub?.on('error', noop)
    const subEnded = sub !== undefined && hasSocket(sub) ? ended(sub) : undefined
    sub?.disconnect()
    // Leave the cluster's view now rather than after presenceTtl.
    const closeMs = this.waitMs('close')
    if (pub.status === 'ready') await settlesWithin(this.presence.leaveAll(pub), closeMs)
    if (this.ownsPublisher) {
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

  // ---- outages ----

  down (reason: string, err?: Error): void {
    if (this.closed || this.outage !== undefined) return
    this.outage = { since: Date.now(), dropped: 0 }
    this.node?.log.error({ err, prefix: this.p.prefix },
      `redis adapter: Redis unavailable (${reason}); local delivery goes on, messages to other nodes are counted as dropped until it is back`)
  }

  private maybeUp (): void {
    if (this.closed || this.outage === undefined) return
    if (!this.pubSynced || !this.subSynced || this.stalled) return
    if (this.pub?.status !== 'ready') return
    if (this.shards !== undefined ? !this.shards.healthy : this.sub?.status !== 'ready') return
    const { since, dropped } = this.outage
    this.outage = undefined
    this.node.log.info({ prefix: this.p.prefix, downMs: Date.now() - since, dropped, rooms: this.rooms.size, users: this.users.size },
      'redis adapter: Redis is back; rooms and users resubscribed, presence re-registered')
    for (const resolve of [...this.upWaiters]) resolve(true)
  }

  /** Resolves true once no outage is on and publications can go out, false after `ms` or on close. */
  whenUp (ms: number): Promise<boolean> {
    if (this.closed || ms <= 0) return Promise.resolve(false)
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

  /** The command connection when it can take commands now. */
  ready (): Redis | Cluster | undefined {
    const pub = this.pub
    return pub !== undefined && !this.closed && pub.status === 'ready' ? pub : undefined
  }

  /** The command connection when a publication can go out now (never queue one: it would arrive out of its time). */
  writable (): Redis | Cluster | undefined {
    return this.stalled ? undefined : this.ready()
  }

  private drop (): void {
    this.node.countDropped(1)
    if (this.outage !== undefined) this.outage.dropped++
  }

  /** Heartbeat: notice a Redis that stopped answering; renew our presence leases. */
  private beat (): void {
    const pub = this.pub
    if (pub === undefined || this.closed) return
    if (this.heartbeatPending) {
      // Two ticks, not one: a blocked event loop runs a late tick before it reads the late reply.
      if (++this.missedBeats >= 2 && !this.stalled) {
        this.stalled = true
        this.down(`no answer to a heartbeat for ${this.missedBeats * this.heartbeatMs} ms`)
      }
      return
    }
    if (pub.status !== 'ready') return
    this.heartbeatPending = true
    this.presence.beat(pub)
    pub.ping().then(() => {
      this.heartbeatPending = false
      this.missedBeats = 0
      const wasStalled = this.stalled
      this.stalled = false
      // After a stall, messages may have been lost on the way: have history rooms check their position.
      if (wasStalled) this.node.resyncHistory()
      if (this.presence.hasDirtyRooms) this.restorePresence()
      else this.maybeUp()
    }, (err: Error) => {
      this.heartbeatPending = false
      this.missedBeats = 0
      this.stalled = false
      this.down('heartbeat failed', err)
    })
  }

  /** After a reconnect: our presence written again (Redis may have restarted empty). */
  private restorePresence (): void {
    const pub = this.ready()
    if (pub === undefined) return
    this.presence.restore(pub).then(() => {
      this.pubSynced = true
      this.node.resyncHistory()
      this.maybeUp()
    }, (err: Error) => this.down('could not re-register presence', err))
  }

  /** After the subscriber reconnected: every channel this node needs now. */
  private resubscribe (): void {
    const sub = this.sub
    if (sub === undefined || this.closed || sub.status !== 'ready') return
    const channels = [this.keys.all]
    for (const room of this.rooms) channels.push(this.keys.roomChannel(room))
    for (const userId of this.users) channels.push(this.keys.userChannel(userId))
    const done: Array<Promise<unknown>> = []
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) done.push(sub.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH)))
    Promise.all(done).then(() => {
      this.subSynced = true
      // What was published while we were away is read back from the history rooms' streams.
      this.node.resyncHistory()
      this.maybeUp()
    }, (err: Error) => this.down('could not resubscribe', err))
  }

  // ---- the bus ----

  private publish (kind: 'm' | 'c', channel: string, payload: string, except: string | undefined): Promise<unknown> | undefined {
    const pub = this.writable()
    if (pub === undefined) {
      this.drop()
      return undefined
    }
    const message = this.seq.envelope(kind, channel, except, payload)
    // broadcastAll's channel is plain pub/sub, which a cluster carries to every node.
    const published = this.shards !== undefined && channel !== this.keys.all ? pub.spublish(channel, message) : pub.publish(channel, message)
    published.catch((err: Error) => {
      this.drop()
      this.down('a publish failed', err)
    })
    return published
  }

  private receive (channel: string, message: string): void {
    const node = this.node
    if (node === undefined) return
    const envelope = decode(message)
    if (envelope === undefined) return
    if (envelope.kind !== 'h' && envelope.from === node.nodeId) return

    let room: string | undefined
    let userId: string | undefined
    if (channel === this.keys.all) {
      if (envelope.kind !== 'm') return
    } else if ((room = this.keys.roomOf(channel)) !== undefined) {
      if (!this.rooms.has(room)) return // in flight when we unsubscribed
    } else if ((userId = this.keys.userOf(channel)) !== undefined) {
      if (!this.users.has(userId)) return
    } else {
      return
    }

    try {
      if (envelope.kind === 'h') {
        if (room !== undefined) node.deliverHistory(room, { epoch: envelope.from, offset: envelope.seq, payload: envelope.body, except: envelope.except })
        return
      }
      if (envelope.kind === 'g') {
        // A dead node's members, as left: published once by Redis, whichever node purged them.
        const diff = room !== undefined ? parseDiff(envelope.body) : undefined
        if (diff !== undefined) node.deliverPresence(room!, envelope.from, diff)
        return
      }
      const missed = this.seq.received(channel, envelope.from, envelope.seq)
      if (missed < 0) return // late, and already counted as missing
      if (missed > 0) node.countDropped(missed)
      if (envelope.kind === 'p') {
        const diff = room !== undefined ? parseDiff(envelope.body) : undefined
        if (diff !== undefined) node.deliverPresence(room!, envelope.from, diff)
      } else if (envelope.kind === 'c') {
        if (userId !== undefined) node.deliverUserCommand(userId, JSON.parse(envelope.body) as UserCommand)
      } else if (room !== undefined) {
        node.deliverToRoom(room, envelope.body, envelope.except)
      } else if (userId !== undefined) {
        node.deliverToUser(userId, envelope.body)
      } else {
        node.deliverToAll(envelope.body)
      }
    } catch (err) {
      node.log.error({ err, channel }, 'redis adapter: delivering a message from another node failed')
    }
  }

  publishToRoom (room: string, payload: string, except?: string): void {
    this.publish('m', this.keys.roomChannel(room), payload, except)
  }

  publishToUser (userId: string, payload: string): void {
    this.publish('m', this.keys.userChannel(userId), payload, undefined)
  }

  publishToAll (payload: string): void {
    this.publish('m', this.keys.all, payload, undefined)
  }

  async publishPresence (room: string, diff: PresenceDiff): Promise<void> {
    if (this.writable() === undefined) {
      this.drop()
      return
    }
    const sent = this.presence.diff(room, diff).catch((err: Error) => {
      this.drop()
      this.down('a presence diff failed', err)
    })
    // Not answered in time: the caller goes on; the diff is still counted if it fails later.
    await settlesWithin(sent, this.waitMs('presenceDiff'))
  }

  /**
   * Resolves once Redis took the command; rejects when it cannot be handed over (Redis unreachable)
   * or Redis did not answer in time (then it may still go out, should Redis answer later).
   */
  async publishUserCommand (userId: string, command: UserCommand): Promise<void> {
    const published = this.publish('c', this.keys.userChannel(userId), JSON.stringify(command), undefined)
    if (published === undefined) throw new Error('Redis is unreachable')
    try {
      await withTimeout(published, this.waitMs('userCommand'), 'Redis')
    } catch (err) {
      if (err instanceof NoAnswerError) throw new NoAnswerError('Redis', err.ms, 'the command may still reach the other nodes if Redis answers later')
      throw err
    }
  }

  async subscribeRoom (room: string): Promise<void> {
    this.rooms.add(room)
    // The counts only size the first presence frame: never hold a join for them (a frozen Redis).
    await Promise.all([
      this.subscribe(this.keys.roomChannel(room)),
      this.stalled ? undefined : settlesWithin(this.presence.readCounts(room), this.waitMs('subscribe'))
    ])
  }

  unsubscribeRoom (room: string): void {
    this.rooms.delete(room)
    this.unsubscribe(this.keys.roomChannel(room))
  }

  async subscribeUser (userId: string): Promise<void> {
    this.users.add(userId)
    await this.subscribe(this.keys.userChannel(userId))
  }

  unsubscribeUser (userId: string): void {
    this.users.delete(userId)
    this.unsubscribe(this.keys.userChannel(userId))
  }

  /**
   * Resolves once Redis confirmed the subscription, so whatever is published after reaches us.
   * During an outage it resolves at once: the channel is in the set resubscribed when Redis is back.
   */
  private async subscribe (channel: string): Promise<void> {
    this.seq.forget(channel)
    if (this.shards !== undefined) {
      if (this.closed) return
      const done = this.shards.add(channel)
      if (!this.stalled) await settlesWithin(done, this.waitMs('subscribe'))
      return
    }
    const sub = this.sub
    if (sub === undefined || this.closed || sub.status !== 'ready') return
    const done = sub.subscribe(channel).catch((err: Error) => { this.down('a subscribe failed', err) })
    // A stalled Redis will run the SUBSCRIBE when it wakes up; do not hold the join until then.
    if (!this.stalled) await settlesWithin(done, this.waitMs('subscribe'))
  }

  private unsubscribe (channel: string): void {
    this.seq.forget(channel)
    if (this.shards !== undefined) {
      this.shards.remove(channel)
      return
    }
    const sub = this.sub
    if (sub === undefined || this.closed || sub.status !== 'ready') return
    sub.unsubscribe(channel).catch(noop) // after a reconnect only what is still needed is resubscribed
  }

  // ---- presence ----

  addPresence (room: string, member: RoomMember): void {
    this.presence.add(room, member)
  }

  removePresence (room: string, connectionId: string): void {
    if (this.closed) return
    this.presence.remove(room, connectionId)
  }

  async members (room: string, limit?: number): Promise<RoomMember[]> {
    if (this.node === undefined) return []
    // Without Redis (down, or stalled: no answer within presenceTtl / 2), the part we are sure of.
    if (this.stalled) return this.node.localMembers(room)
    return await this.presence.members(room, limit, this.waitMs('presenceRead'))
  }

  async roomSize (room: string): Promise<number | undefined> {
    if (this.node === undefined || this.stalled) return undefined
    return await this.presence.size(room, this.waitMs('presenceRead'))
  }
}
