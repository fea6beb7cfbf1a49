// Routing between nodes over Redis pub/sub: which channels this node listens to, what it publishes
// where, and where what arrives goes on this node. The connections are redis-link.ts's, the wire
// format redis-codec.ts's.
//
// Channels (redis-keys.ts): a room's, subscribed only while the room has members on this node; a
// user's, while the user is connected here; and one every node hears, for broadcastAll. A node
// ignores what it published itself (it delivered that locally already), except history messages:
// Redis publishes those, in the room's order, to every node, the publisher's too (one at a time,
// `h`, or a node's messages of one tick together, `b`).
import type { AdapterNode, UserCommand } from '../../types/index.js'
import { NoAnswerError, withTimeout } from '../async.js'
import { decode, parseDiff, type SeqCounter, splitBatch } from './redis-codec.js'
import type { LinkChannels, RedisLink } from './redis-link.js'

export class RedisBus implements LinkChannels {
  private readonly link: RedisLink
  private readonly node: AdapterNode
  private readonly seq: SeqCounter
  /** What this node is subscribed to (or will subscribe to again when Redis is back). */
  private readonly rooms = new Set<string>()
  private readonly users = new Set<string>()

  constructor (link: RedisLink, seq: SeqCounter) {
    this.link = link
    this.node = link.node
    this.seq = seq
  }

  publishToRoom (room: string, payload: string, except?: string, traceparent?: string): void {
    this.publish('m', this.link.keys.roomChannel(room), payload, except, traceparent)
  }

  publishToUser (userId: string, payload: string): void {
    this.publish('m', this.link.keys.userChannel(userId), payload, undefined)
  }

  publishToAll (payload: string): void {
    this.publish('m', this.link.keys.all, payload, undefined)
  }

  /**
   * Resolves once Redis took the command; rejects when it cannot be handed over (Redis unreachable)
   * or Redis did not answer in time (then it may still go out, should Redis answer later).
   */
  async publishUserCommand (userId: string, command: UserCommand): Promise<void> {
    const published = this.publish('c', this.link.keys.userChannel(userId), JSON.stringify(command), undefined)
    if (published === undefined) throw new Error('Redis is unreachable')
    try {
      await withTimeout(published, this.link.waitMs('userCommand'), 'Redis')
    } catch (err) {
      if (err instanceof NoAnswerError) throw new NoAnswerError('Redis', err.ms, 'the command may still reach the other nodes if Redis answers later')
      throw err
    }
  }

  /** Never queued: what cannot go out now, or fails on the way, is counted as dropped. */
  private publish (kind: 'm' | 'c', channel: string, payload: string, except: string | undefined, traceparent?: string): Promise<unknown> | undefined {
    if (this.link.writable() === undefined) {
      this.link.drop()
      return undefined
    }
    const published = this.link.publish(channel, this.seq.envelope(kind, channel, except, payload, traceparent))
    published?.catch((err: Error) => {
      this.link.drop()
      this.link.down('a publish failed', err)
    })
    return published
  }

  // ---- subscriptions ----

  /** Resolves once Redis confirmed it (or at once during an outage: it is subscribed again when Redis is back). */
  async subscribeRoom (room: string): Promise<void> {
    this.rooms.add(room)
    await this.subscribe(this.link.keys.roomChannel(room))
  }

  unsubscribeRoom (room: string): void {
    this.rooms.delete(room)
    this.unsubscribe(this.link.keys.roomChannel(room))
  }

  async subscribeUser (userId: string): Promise<void> {
    this.users.add(userId)
    await this.subscribe(this.link.keys.userChannel(userId))
  }

  unsubscribeUser (userId: string): void {
    this.users.delete(userId)
    this.unsubscribe(this.link.keys.userChannel(userId))
  }

  /** A fresh subscription starts a fresh count: what was published before it is not a loss. */
  private async subscribe (channel: string): Promise<void> {
    this.seq.forget(channel)
    await this.link.subscribe(channel)
  }

  private unsubscribe (channel: string): void {
    this.seq.forget(channel)
    this.link.unsubscribe(channel)
  }

  /** Every channel this node needs now (the subscriber came back from a reconnect with none). */
  channels (): string[] {
    const { keys } = this.link
    const channels = [keys.all]
    for (const room of this.rooms) channels.push(keys.roomChannel(room))
    for (const userId of this.users) channels.push(keys.userChannel(userId))
    return channels
  }

  subscribed (): { rooms: number, users: number } {
    return { rooms: this.rooms.size, users: this.users.size }
  }

  // ---- arrivals ----

  /** A publication from Redis, handed to this node; anything malformed or not for this node is ignored. */
  receive (channel: string, message: string): void {
    const { node, link: { keys } } = this
    const envelope = decode(message)
    if (envelope === undefined) return
    if (envelope.kind !== 'h' && envelope.kind !== 'b' && envelope.from === node.nodeId) return

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
      if (envelope.kind === 'b') {
        const entries = room !== undefined ? splitBatch(envelope.body) : undefined
        if (entries === undefined) return
        for (let i = 0; i < entries.length; i++) {
          node.deliverHistory(room!, { epoch: envelope.from, offset: envelope.seq + i, payload: entries[i].payload, except: entries[i].except })
        }
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
        if (envelope.traceparent === undefined) node.deliverToRoom(room, envelope.body, envelope.except)
        else node.deliverToRoom(room, envelope.body, envelope.except, envelope.traceparent)
      } else if (userId !== undefined) {
        node.deliverToUser(userId, envelope.body)
      } else {
        node.deliverToAll(envelope.body)
      }
    } catch (err) {
      node.log.error({ err, channel }, 'redis adapter: delivering a message from another node failed')
    }
  }
}
