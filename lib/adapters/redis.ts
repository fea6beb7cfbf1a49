// The Redis adapter: carries what the broker publishes to the other nodes over Redis pub/sub, keeps
// cluster-wide presence (redis-presence.ts), orders and keeps history rooms (redis-history.ts), and
// carries user commands. Its connections, and what it does while Redis is away, are in
// redis-link.ts; the wire format and the loss accounting in redis-codec.ts.
//
// Channels (redis-keys.ts): a room's (a node subscribes only while it has local members there), a
// user's (while the user is connected here) and one for broadcastAll. A node drops what it
// published itself (the broker delivered it locally), except history messages: those reach every
// node, the publisher's too, from Redis.
import type { AdapterNode, PresenceDiff, RoomMember, RoomsAdapter, UserCommand } from '../../types/index.js'
import type { RedisAdapterOptions } from '../../types/redis.js'
import { NoAnswerError, settlesWithin, withTimeout } from '../async.js'
import { InvalidOptionError } from '../errors.js'
import { decode, parseDiff, SEP, SeqCounter } from './redis-codec.js'
import { RedisHistory } from './redis-history.js'
import { RedisLink } from './redis-link.js'
import { normaliseRedisOptions, type RedisParams } from './redis-options.js'
import { RedisPresence } from './redis-presence.js'

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

/** The adapter's parts, made by init (they need the node). */
interface Parts {
  link: RedisLink
  seq: SeqCounter
  presence: RedisPresence
  history: RedisHistory
}

class RedisAdapter implements RoomsAdapter {
  private readonly params: RedisParams | Error
  private parts: Parts | undefined

  /** What this node is subscribed to (or will resubscribe to when Redis is back). */
  private readonly rooms = new Set<string>()
  private readonly users = new Set<string>()

  constructor (params: RedisParams | Error) {
    this.params = params
  }

  /** History rooms are ordered by Redis (set once init has run). */
  get history (): RedisHistory | undefined { return this.parts?.history }

  private get my (): Parts {
    if (this.parts === undefined) throw new Error('redis adapter: init() has not run')
    return this.parts
  }

  // ---- lifecycle ----

  async init (node: AdapterNode): Promise<void> {
    if (this.params instanceof Error) throw this.params
    if (this.parts !== undefined) {
      throw new InvalidOptionError('adapter', 'this redisAdapter() is already in use; create one per Fastify instance')
    }
    if (node.nodeId.length === 0 || node.nodeId.includes(SEP)) throw new Error('redis adapter: the node id must be non-empty and free of NUL')
    const link = new RedisLink(this.params, node)
    const seq = new SeqCounter(node.nodeId)
    const presence = new RedisPresence(link, seq)
    const parts: Parts = { link, seq, presence, history: new RedisHistory(link) }
    this.parts = parts
    try {
      await link.open(this, presence)
    } catch (err) {
      this.parts = undefined
      throw err
    }
  }

  async close (): Promise<void> {
    await this.parts?.link.close()
  }

  // ---- the bus ----

  /** Every channel this node needs now (the subscriber reconnected with none). */
  channels (): string[] {
    const { keys } = this.my.link
    const channels = [keys.all]
    for (const room of this.rooms) channels.push(keys.roomChannel(room))
    for (const userId of this.users) channels.push(keys.userChannel(userId))
    return channels
  }

  subscribed (): { rooms: number, users: number } {
    return { rooms: this.rooms.size, users: this.users.size }
  }

  private publish (kind: 'm' | 'c', channel: string, payload: string, except: string | undefined): Promise<unknown> | undefined {
    const { link, seq } = this.my
    if (link.writable() === undefined) {
      link.drop()
      return undefined
    }
    const published = link.publish(channel, seq.envelope(kind, channel, except, payload))
    published?.catch((err: Error) => {
      link.drop()
      link.down('a publish failed', err)
    })
    return published
  }

  receive (channel: string, message: string): void {
    const parts = this.parts
    if (parts === undefined) return
    const { link: { node, keys }, seq } = parts
    const envelope = decode(message)
    if (envelope === undefined) return
    if (envelope.kind !== 'h' && envelope.from === node.nodeId) return

    let room: string | undefined
    let userId: string | undefined
    if (channel === keys.all) {
      if (envelope.kind !== 'm') return
    } else if ((room = keys.roomOf(channel)) !== undefined) {
      if (!this.rooms.has(room)) return // in flight when we unsubscribed
    } else if ((userId = keys.userOf(channel)) !== undefined) {
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
      const missed = seq.received(channel, envelope.from, envelope.seq)
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
    this.publish('m', this.my.link.keys.roomChannel(room), payload, except)
  }

  publishToUser (userId: string, payload: string): void {
    this.publish('m', this.my.link.keys.userChannel(userId), payload, undefined)
  }

  publishToAll (payload: string): void {
    this.publish('m', this.my.link.keys.all, payload, undefined)
  }

  async publishPresence (room: string, diff: PresenceDiff): Promise<void> {
    const { link, presence } = this.my
    if (link.writable() === undefined) {
      link.drop()
      return
    }
    const sent = presence.diff(room, diff).catch((err: Error) => {
      link.drop()
      link.down('a presence diff failed', err)
    })
    // Not answered in time: the caller goes on; the diff is still counted if it fails later.
    await settlesWithin(sent, link.waitMs('presenceDiff'))
  }

  /**
   * Resolves once Redis took the command; rejects when it cannot be handed over (Redis unreachable)
   * or Redis did not answer in time (then it may still go out, should Redis answer later).
   */
  async publishUserCommand (userId: string, command: UserCommand): Promise<void> {
    const published = this.publish('c', this.my.link.keys.userChannel(userId), JSON.stringify(command), undefined)
    if (published === undefined) throw new Error('Redis is unreachable')
    try {
      await withTimeout(published, this.my.link.waitMs('userCommand'), 'Redis')
    } catch (err) {
      if (err instanceof NoAnswerError) throw new NoAnswerError('Redis', err.ms, 'the command may still reach the other nodes if Redis answers later')
      throw err
    }
  }

  async subscribeRoom (room: string): Promise<void> {
    const { link, presence } = this.my
    this.rooms.add(room)
    // The counts only size the first presence frame: never hold a join for them (a frozen Redis).
    await Promise.all([
      this.subscribe(link.keys.roomChannel(room)),
      link.stalled ? undefined : settlesWithin(presence.readCounts(room), link.waitMs('subscribe'))
    ])
  }

  unsubscribeRoom (room: string): void {
    this.rooms.delete(room)
    this.unsubscribe(this.my.link.keys.roomChannel(room))
  }

  async subscribeUser (userId: string): Promise<void> {
    this.users.add(userId)
    await this.subscribe(this.my.link.keys.userChannel(userId))
  }

  unsubscribeUser (userId: string): void {
    this.users.delete(userId)
    this.unsubscribe(this.my.link.keys.userChannel(userId))
  }

  private async subscribe (channel: string): Promise<void> {
    this.my.seq.forget(channel)
    await this.my.link.subscribe(channel)
  }

  private unsubscribe (channel: string): void {
    this.my.seq.forget(channel)
    this.my.link.unsubscribe(channel)
  }

  // ---- presence ----

  addPresence (room: string, member: RoomMember): void {
    this.my.presence.add(room, member)
  }

  removePresence (room: string, connectionId: string): void {
    if (this.my.link.closed) return
    this.my.presence.remove(room, connectionId)
  }

  async members (room: string, limit?: number): Promise<RoomMember[]> {
    const parts = this.parts
    if (parts === undefined) return []
    // Without Redis (down, or stalled: no answer within presenceTtl / 2), the part we are sure of.
    if (parts.link.stalled) return parts.link.node.localMembers(room)
    return await parts.presence.members(room, limit, parts.link.waitMs('presenceRead'))
  }

  async roomSize (room: string): Promise<number | undefined> {
    const parts = this.parts
    if (parts === undefined || parts.link.stalled) return undefined
    return await parts.presence.size(room, parts.link.waitMs('presenceRead'))
  }
}
