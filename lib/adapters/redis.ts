// The Redis adapter (`fastify-ws-rooms/redis`): many nodes, one set of rooms. It only puts the
// parts together; each RoomsAdapter method is handed to the part that does it:
//
//   redis-link.ts          the connections to Redis (one server or a Cluster), the heartbeat, and
//                          what happens while Redis is away (outage, reconnection, the log lines)
//   redis-bus.ts           routing: which channels this node hears, publishing, delivering arrivals
//   redis-codec.ts         the wire format between nodes and its loss accounting
//   redis-presence.ts      cluster-wide presence (members, counts, dead nodes)
//   history/redis-store.ts history rooms: one order per room across nodes, kept in a Redis stream
//
// The only module of the package that imports ioredis at runtime (through redis-link.ts).
import type { AdapterNode, PresenceDiff, RoomMember, RoomsAdapter, UserCommand } from '../../types/index.js'
import type { RedisAdapterOptions } from '../../types/redis.js'
import { InvalidOptionError } from '../errors.js'
import { RedisHistoryStore } from '../history/redis-store.js'
import { RedisBus } from './redis-bus.js'
import { SEP, SeqCounter } from './redis-codec.js'
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

/** The adapter's parts. init makes them: they need the node. */
interface Parts {
  link: RedisLink
  bus: RedisBus
  presence: RedisPresence
  history: RedisHistoryStore
}

class RedisAdapter implements RoomsAdapter {
  private readonly params: RedisParams | Error
  private parts: Parts | undefined

  constructor (params: RedisParams | Error) {
    this.params = params
  }

  async init (node: AdapterNode): Promise<void> {
    if (this.params instanceof Error) throw this.params
    if (this.parts !== undefined) {
      throw new InvalidOptionError('adapter', 'this redisAdapter() is already in use; create one per Fastify instance')
    }
    // The node id is the first field of every publication, which NUL ends.
    if (node.nodeId.length === 0 || node.nodeId.includes(SEP)) throw new Error('redis adapter: the node id must be non-empty and free of NUL')
    const link = new RedisLink(this.params, node)
    // One count per channel for this node's publications, whichever part publishes them.
    const seq = new SeqCounter(node.nodeId)
    const parts: Parts = { link, bus: new RedisBus(link, seq), presence: new RedisPresence(link, seq), history: new RedisHistoryStore(link) }
    this.parts = parts
    try {
      await link.open(parts.bus, parts.presence)
    } catch (err) {
      this.parts = undefined // nothing is left open; a later init may try again
      throw err
    }
  }

  /** History rooms are ordered by Redis (once init has run). */
  get history (): RedisHistoryStore | undefined { return this.parts?.history }

  private get my (): Parts {
    if (this.parts === undefined) throw new Error('redis adapter: init() has not run')
    return this.parts
  }

  async close (): Promise<void> { await this.parts?.link.close() }

  publishToRoom (room: string, payload: string, except?: string, traceparent?: string): void { this.my.bus.publishToRoom(room, payload, except, traceparent) }
  publishToUser (userId: string, payload: string): void { this.my.bus.publishToUser(userId, payload) }
  publishToAll (payload: string): void { this.my.bus.publishToAll(payload) }
  async publishUserCommand (userId: string, command: UserCommand): Promise<void> { await this.my.bus.publishUserCommand(userId, command) }
  async publishPresence (room: string, diff: PresenceDiff): Promise<void> { await this.my.presence.publish(room, diff) }

  async subscribeRoom (room: string): Promise<void> { await Promise.all([this.my.bus.subscribeRoom(room), this.my.presence.readCounts(room)]) }
  unsubscribeRoom (room: string): void { this.my.bus.unsubscribeRoom(room) }
  async subscribeUser (userId: string): Promise<void> { await this.my.bus.subscribeUser(userId) }
  unsubscribeUser (userId: string): void { this.my.bus.unsubscribeUser(userId) }

  addPresence (room: string, member: RoomMember): void { this.my.presence.add(room, member) }
  removePresence (room: string, connectionId: string): void { this.my.presence.remove(room, connectionId) }
  async members (room: string, limit?: number): Promise<RoomMember[]> { return await (this.parts?.presence.members(room, limit) ?? []) }
  async roomSize (room: string): Promise<number | undefined> { return await this.parts?.presence.size(room) }
}
