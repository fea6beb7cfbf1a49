// The Redis adapter: carries what the broker publishes to the other nodes over Redis pub/sub, and
// keeps cluster-wide presence for `members()`. The only module that imports ioredis.
//
// Bus. Every publication is one PUBLISH of `nodeId \0 seq \0 except \0 payload`: the payload is the
// JSON the broker serialized once, forwarded as it is (never parsed here), and a node drops what it
// published itself (the broker delivered that locally). Channels: `<prefix>:room:<room>` (a node
// subscribes only while it has local members), `<prefix>:user:<userId>` (while the user is connected
// here) and `<prefix>:all`. One connection publishes, a duplicate subscribes; Redis keeps one
// connection's publications in order, so one publisher's messages arrive in order everywhere.
//
// Loss accounting. `seq` counts one node's publications per channel. A node that is down or stalled
// does not publish: it counts the message in `stats().dropped`. A receiver that sees a publisher's
// seq jump (it was resubscribing while that publisher was already back) counts the gap as dropped
// on its side. So a message reaches every subscribed node or is counted, never lost silently.
//
// Presence. A hash per room, `<prefix>:presence:<room>`, field connectionId → `nodeId \0 userJson`,
// and a heartbeat key per node, `<prefix>:node:<nodeId>`, whose TTL (`presenceTtl`, default 10 s) the
// node refreshes every `presenceTtl / 4`. `members()` reads the hash in one Lua script that keeps
// entries whose node key exists and deletes the others, so the members of a node that died without
// cleaning up (SIGKILL, power loss) disappear from `members()` at most `presenceTtl` after its last
// heartbeat. Room hashes expire too, so the garbage of dead nodes in rooms nobody asks about goes
// away: every node with members in a room keeps its hash alive for at least its own presenceTtl
// (never shortening it), and writes its entries again if they vanished anyway (the heartbeat
// checks one of them per room).
//
// Faults. Redis going away (connection closed) or stalling (a heartbeat unanswered for two
// intervals, `presenceTtl / 2`) starts an outage: one log line, publications are counted as dropped instead of queued,
// joins are not held up. When both connections are ready again the adapter resubscribes every room
// and user it has locally, re-registers its presence, and logs once that Redis is back.
import { Redis, type RedisOptions } from 'ioredis'
import type { AdapterNode, RoomMember, RoomsAdapter } from '../../types/index.js'
import type { RedisAdapterOptions } from '../../types/redis.js'
import { InvalidOptionError } from '../errors.js'
import { normaliseRedisOptions, type RedisParams } from './redis-options.js'
import { KEEP_ALIVE, MEMBERS, PURGE } from './redis-scripts.js'

/** Channels one SUBSCRIBE carries when resubscribing many at once. */
const SUBSCRIBE_BATCH = 1000
/** Per-channel publish counters kept before starting over (receivers treat a lower seq as a restart). */
const MAX_SEQ_STREAMS = 100_000
const SEP = '\u0000'

const TIMED_OUT = Symbol('timed out')

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

/** Resolve with `promise`, or with TIMED_OUT after `ms` (the promise keeps running). */
function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT)
    timer.unref()
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function noop (): void {}

/** Resolves when `conn` will not reconnect any more (its socket is closed). */
function ended (conn: Redis): Promise<void> {
  if (conn.status === 'end') return Promise.resolve()
  return new Promise((resolve) => conn.once('end', () => resolve()))
}

class RedisAdapter implements RoomsAdapter {
  private readonly params: RedisParams | Error
  private node: AdapterNode | undefined
  private pub: Redis | undefined
  private sub: Redis | undefined
  private ownsPublisher = false
  private nodeKey = ''
  private readonly heartbeatMs: number = 0

  /** What this node is subscribed to (or will resubscribe to when Redis is back). */
  private readonly rooms = new Set<string>()
  private readonly users = new Set<string>()
  /** Rooms where a presence removal could not reach Redis: purged of our entries when it is back. */
  private dirtyRooms = new Set<string>()
  private roomPrefix = ''
  private userPrefix = ''
  /** Our last seq per channel. */
  private readonly sentSeq = new Map<string, number>()
  /** Last seq seen per channel, per publishing node. */
  private readonly seenSeq = new Map<string, Map<string, number>>()

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
  private readonly listeners: Array<[Redis, string, (...args: any[]) => void]> = []

  constructor (params: RedisParams | Error) {
    this.params = params
    if (!(params instanceof Error)) this.heartbeatMs = Math.max(50, Math.floor(params.presenceTtl / 4))
  }

  private get p (): RedisParams { return this.params as RedisParams }
  private roomChannel (room: string): string { return this.roomPrefix + room }
  private userChannel (userId: string): string { return this.userPrefix + userId }
  private get allChannel (): string { return `${this.p.prefix}:all` }
  private presenceKey (room: string): string { return `${this.p.prefix}:presence:${room}` }

  // ---- lifecycle ----

  async init (node: AdapterNode): Promise<void> {
    if (this.params instanceof Error) throw this.params
    if (this.node !== undefined) {
      throw new InvalidOptionError('adapter', 'this redisAdapter() is already in use; create one per Fastify instance')
    }
    if (node.nodeId.length === 0 || node.nodeId.includes(SEP)) throw new Error('redis adapter: the node id must be non-empty and free of NUL')
    this.node = node
    this.nodeKey = `${this.p.prefix}:node:${node.nodeId}`
    this.roomPrefix = `${this.p.prefix}:room:`
    this.userPrefix = `${this.p.prefix}:user:`
    const given = this.p.client
    const optionName = given !== undefined ? 'redisAdapter.client' : 'redisAdapter.url'
    let pub: Redis | undefined
    let sub: Redis | undefined
    let lastError: Error | undefined
    const remember = (err: Error): void => { lastError ??= err }
    try {
      if (given !== undefined) {
        if (given.status === 'end' || given.status === 'close') throw new Error('the client is closed')
        pub = given
      } else {
        pub = new Redis(this.p.url, {
          lazyConnect: true,
          // Never queue: what cannot be sent now is counted as dropped, not delivered late.
          enableOfflineQueue: false,
          // A command in flight when the connection drops fails at once instead of being replayed.
          maxRetriesPerRequest: 0,
          autoResubscribe: false,
          retryStrategy: (times: number) => Math.min(100 * 2 ** (times - 1), 2000),
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
      await Promise.all([this.connect(pub), this.connect(sub)])
      await sub.subscribe(this.allChannel)
      await pub.set(this.nodeKey, '1', 'PX', this.p.presenceTtl)
    } catch (err) {
      pub?.off('error', remember)
      sub?.off('error', remember)
      sub?.disconnect()
      if (this.ownsPublisher) pub?.disconnect()
      this.pub = undefined
      this.sub = undefined
      this.node = undefined
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

  /** Connect `conn` if it is not yet; reject at its first failed attempt. */
  private async connect (conn: Redis): Promise<void> {
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

  private listen (conn: Redis, event: string, fn: (...args: any[]) => void): void {
    conn.on(event, fn)
    this.listeners.push([conn, event, fn])
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeat)
    for (const [conn, event, fn] of this.listeners) conn.off(event, fn)
    this.listeners.length = 0
    const { pub, sub, node } = this
    if (pub === undefined || sub === undefined || node === undefined) return
    sub.on('error', noop)
    const subEnded = ended(sub)
    sub.disconnect()
    // Leave the cluster's view now rather than after presenceTtl: drop our heartbeat and entries.
    if (pub.status === 'ready') {
      const done: Array<Promise<unknown>> = [pub.del(this.nodeKey)]
      for (const room of node.localRooms()) {
        const ids = node.localMembers(room).map((m) => m.connectionId)
        if (ids.length > 0) done.push(pub.hdel(this.presenceKey(room), ...ids))
      }
      await withTimeout(Promise.allSettled(done), this.heartbeatMs)
    }
    if (this.ownsPublisher) {
      pub.on('error', noop)
      const pubEnded = ended(pub)
      if (pub.status === 'ready') {
        const quit = await withTimeout(pub.quit().catch(noop), this.heartbeatMs)
        if (quit === TIMED_OUT) pub.disconnect()
      } else {
        pub.disconnect()
      }
      await withTimeout(pubEnded, this.heartbeatMs)
    }
    await withTimeout(subEnded, this.heartbeatMs)
  }

  // ---- outages ----

  private down (reason: string, err?: Error): void {
    if (this.closed || this.outage !== undefined) return
    this.outage = { since: Date.now(), dropped: 0 }
    this.node?.log.error({ err, prefix: this.p.prefix },
      `redis adapter: Redis unavailable (${reason}); local delivery goes on, messages to other nodes are counted as dropped until it is back`)
  }

  private maybeUp (): void {
    if (this.closed || this.outage === undefined) return
    if (!this.pubSynced || !this.subSynced || this.stalled) return
    if (this.pub?.status !== 'ready' || this.sub?.status !== 'ready') return
    const { since, dropped } = this.outage
    this.outage = undefined
    this.node?.log.info({ prefix: this.p.prefix, downMs: Date.now() - since, dropped, rooms: this.rooms.size, users: this.users.size },
      'redis adapter: Redis is back; rooms and users resubscribed, presence re-registered')
  }

  /** Can a publication go out now? (Never queue one for later: it would arrive out of its time.) */
  private get writable (): boolean {
    return this.pub?.status === 'ready' && !this.stalled && !this.closed
  }

  private drop (): void {
    this.node?.countDropped(1)
    if (this.outage !== undefined) this.outage.dropped++
  }

  /** Heartbeat: keep our node key and our rooms' presence alive; notice a Redis that stopped answering. */
  private beat (): void {
    const pub = this.pub
    const node = this.node
    if (pub === undefined || node === undefined || this.closed) return
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
    const ttl = this.p.presenceTtl
    const alive = pub.pexpire(this.nodeKey, ttl)
    for (const room of node.localRooms()) {
      const sample = node.localMembers(room)[0]
      if (sample === undefined) continue
      KEEP_ALIVE.run(pub, [this.presenceKey(room)], [ttl, sample.connectionId]).then((kept) => {
        // Our entries there expired or were deleted while we have members there: put them back.
        if (kept === 0) this.writePresence(pub, room).catch(noop)
      }, noop)
    }
    alive.then((exists) => {
      this.heartbeatPending = false
      this.missedBeats = 0
      this.stalled = false
      // Our key had expired (a stall longer than the TTL, or a Redis restart we did not see):
      // others may already have deleted our entries, so write them again.
      if (exists === 0 || this.dirtyRooms.size > 0) this.restorePresence()
      else this.maybeUp()
    }, (err: Error) => {
      this.heartbeatPending = false
      this.missedBeats = 0
      this.stalled = false
      this.down('heartbeat failed', err)
    })
  }

  /**
   * After a reconnect: forget our entries in rooms where a leave was missed, then write our
   * heartbeat key and every local member again (Redis may have restarted empty).
   */
  private restorePresence (): void {
    const pub = this.pub
    const node = this.node
    if (pub === undefined || node === undefined || this.closed || pub.status !== 'ready') return
    const dirty = this.dirtyRooms
    this.dirtyRooms = new Set()
    const purge = async (room: string): Promise<void> => {
      await PURGE.run(pub, [this.presenceKey(room)], [node.nodeId + SEP]).catch((err: Error) => {
        this.dirtyRooms.add(room)
        throw err
      })
    }
    // Purges first, awaited: a script Redis does not know yet is sent again after the others,
    // and must not delete the entries written next.
    Promise.all(Array.from(dirty, purge)).then(async () => {
      await Promise.all([
        pub.set(this.nodeKey, '1', 'PX', this.p.presenceTtl),
        ...Array.from(node.localRooms(), async (room) => await this.writePresence(pub, room))
      ])
    }).then(() => {
      this.pubSynced = true
      this.maybeUp()
    }, (err: Error) => this.down('could not re-register presence', err))
  }

  /** Write every local member of `room` into its presence hash, and keep the hash alive. */
  private async writePresence (pub: Redis, room: string): Promise<void> {
    const fields: string[] = []
    for (const member of this.node!.localMembers(room)) fields.push(member.connectionId, this.entry(member))
    if (fields.length === 0) return
    const key = this.presenceKey(room)
    await Promise.all([pub.hset(key, ...fields), KEEP_ALIVE.run(pub, [key], [this.p.presenceTtl, fields[0]])])
  }

  /** After the subscriber reconnected: every channel this node needs now. */
  private resubscribe (): void {
    const sub = this.sub
    if (sub === undefined || this.closed || sub.status !== 'ready') return
    const channels = [this.allChannel]
    for (const room of this.rooms) channels.push(this.roomChannel(room))
    for (const userId of this.users) channels.push(this.userChannel(userId))
    const done: Array<Promise<unknown>> = []
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) done.push(sub.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH)))
    Promise.all(done).then(() => {
      this.subSynced = true
      this.maybeUp()
    }, (err: Error) => this.down('could not resubscribe', err))
  }

  // ---- the bus ----

  private publish (channel: string, payload: string, except: string | undefined): void {
    if (!this.writable) {
      this.drop()
      return
    }
    let seq = (this.sentSeq.get(channel) ?? 0) + 1
    if (seq === 1 && this.sentSeq.size >= MAX_SEQ_STREAMS) this.sentSeq.clear()
    else if (seq > Number.MAX_SAFE_INTEGER - 1) seq = 1
    this.sentSeq.set(channel, seq)
    const message = this.node!.nodeId + SEP + seq.toString(36) + SEP + (except ?? '') + SEP + payload
    this.pub!.publish(channel, message).catch((err: Error) => {
      this.drop()
      this.down('a publish failed', err)
    })
  }

  private receive (channel: string, message: string): void {
    const node = this.node
    if (node === undefined) return
    const a = message.indexOf(SEP)
    const b = message.indexOf(SEP, a + 1)
    const c = message.indexOf(SEP, b + 1)
    if (a <= 0 || b < 0 || c < 0) return
    const from = message.slice(0, a)
    if (from === node.nodeId) return

    let room: string | undefined
    let userId: string | undefined
    if (channel.startsWith(this.roomPrefix)) {
      room = channel.slice(this.roomPrefix.length)
      if (!this.rooms.has(room)) return // in flight when we unsubscribed
    } else if (channel.startsWith(this.userPrefix)) {
      userId = channel.slice(this.userPrefix.length)
      if (!this.users.has(userId)) return
    } else if (channel !== this.allChannel) {
      return
    }

    const seq = parseInt(message.slice(a + 1, b), 36)
    let streams = this.seenSeq.get(channel)
    if (streams === undefined) {
      streams = new Map()
      this.seenSeq.set(channel, streams)
    }
    const last = streams.get(from)
    if (last !== undefined && seq > last + 1) node.countDropped(seq - last - 1)
    streams.set(from, seq)

    const payload = message.slice(c + 1)
    try {
      if (room !== undefined) node.deliverToRoom(room, payload, c > b + 1 ? message.slice(b + 1, c) : undefined)
      else if (userId !== undefined) node.deliverToUser(userId, payload)
      else node.deliverToAll(payload)
    } catch (err) {
      node.log.error({ err, channel }, 'redis adapter: delivering a message from another node failed')
    }
  }

  publishToRoom (room: string, payload: string, except?: string): void {
    this.publish(this.roomChannel(room), payload, except)
  }

  publishToUser (userId: string, payload: string): void {
    this.publish(this.userChannel(userId), payload, undefined)
  }

  publishToAll (payload: string): void {
    this.publish(this.allChannel, payload, undefined)
  }

  async subscribeRoom (room: string): Promise<void> {
    this.rooms.add(room)
    await this.subscribe(this.roomChannel(room))
  }

  unsubscribeRoom (room: string): void {
    this.rooms.delete(room)
    this.unsubscribe(this.roomChannel(room))
  }

  async subscribeUser (userId: string): Promise<void> {
    this.users.add(userId)
    await this.subscribe(this.userChannel(userId))
  }

  unsubscribeUser (userId: string): void {
    this.users.delete(userId)
    this.unsubscribe(this.userChannel(userId))
  }

  /**
   * Resolves once Redis confirmed the subscription, so whatever is published after reaches us.
   * During an outage it resolves at once: the channel is in the set resubscribed when Redis is back.
   */
  private async subscribe (channel: string): Promise<void> {
    this.seenSeq.delete(channel)
    const sub = this.sub
    if (sub === undefined || this.closed || sub.status !== 'ready') return
    const done = sub.subscribe(channel).catch((err: Error) => { this.down('a subscribe failed', err) })
    // A stalled Redis will run the SUBSCRIBE when it wakes up; do not hold the join until then.
    if (!this.stalled) await withTimeout(done, this.heartbeatMs)
  }

  private unsubscribe (channel: string): void {
    this.seenSeq.delete(channel)
    const sub = this.sub
    if (sub === undefined || this.closed || sub.status !== 'ready') return
    sub.unsubscribe(channel).catch(noop) // after a reconnect only what is still needed is resubscribed
  }

  // ---- presence ----

  private entry (member: RoomMember): string {
    return this.node!.nodeId + SEP + JSON.stringify(member.user)
  }

  addPresence (room: string, member: RoomMember): void {
    const pub = this.pub
    // Not connected: restorePresence() writes every local member when Redis is back.
    if (pub === undefined || this.closed || pub.status !== 'ready') return
    const key = this.presenceKey(room)
    // Not awaited: the join must not wait for Redis, and Redis runs these before the join event we
    // publish next on the same connection, so a node that saw the event sees the member too.
    pub.hset(key, member.connectionId, this.entry(member)).catch((err: Error) => this.down('a presence write failed', err))
    KEEP_ALIVE.run(pub, [key], [this.p.presenceTtl, member.connectionId]).catch(noop)
  }

  removePresence (room: string, connectionId: string): void {
    const pub = this.pub
    if (pub === undefined || this.closed) return
    if (pub.status !== 'ready') {
      this.dirtyRooms.add(room)
      return
    }
    pub.hdel(this.presenceKey(room), connectionId).catch((err: Error) => {
      this.dirtyRooms.add(room)
      this.down('a presence removal failed', err)
    })
  }

  async members (room: string): Promise<RoomMember[]> {
    const node = this.node
    if (node === undefined) return []
    const local = node.localMembers(room)
    const pub = this.pub
    // Without Redis (down, or no answer within presenceTtl / 2, the time a stall takes to be
    // noticed), the part of the answer we are sure of.
    if (pub === undefined || this.closed || pub.status !== 'ready' || this.stalled) return local
    const reply = await withTimeout(
      MEMBERS.run(pub, [this.presenceKey(room)], [`${this.p.prefix}:node:`, node.nodeId]) as Promise<string[]>,
      2 * this.heartbeatMs
    ).catch((err: Error) => {
      this.down('a members query failed', err)
      return TIMED_OUT
    })
    if (reply === TIMED_OUT || !Array.isArray(reply)) return local
    const members = [...local]
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const value = reply[i + 1]
      const cut = value.indexOf(SEP)
      try {
        members.push({ connectionId: reply[i], user: JSON.parse(value.slice(cut + 1)) })
      } catch {
        // not an entry we wrote; skip it
      }
    }
    return members
  }
}
