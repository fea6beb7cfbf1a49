// History rooms over Redis (CONTRACT §9): one Lua script gives each message the room's next offset,
// appends it to the room's stream (trimmed to `size`), refreshes the TTLs and publishes it on the
// room's channel, atomically; every node, the publisher's included, delivers it from that one
// ordered flow. Reads (joins with `since`, gap repair, `fastify.rooms.history()`) run one script on
// the same keys. While Redis is unreachable nothing can be ordered, so publishing rejects.
import type { Cluster, Redis } from 'ioredis'
import type { HistoryLimits, HistoryPage, RoomsHistory } from '../../types/index.js'
import { newEpoch } from '../history/memory-history.js'
import type { KeyNames } from './redis-keys.js'
import { withTimeout } from './redis-presence.js'
import { PUBLISH_HISTORY, READ_HISTORY } from './redis-scripts.js'

export interface HistoryLink {
  readonly keys: KeyNames
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  /** The history limits of the plugin (set at init). */
  readonly historyLimits: HistoryLimits | undefined
  /** The command connection when publications can go out now (connected, not stalled), else undefined. */
  writable (): Redis | Cluster | undefined
  /** How long a read may take before it counts as failed. */
  readonly readTimeoutMs: number
  down (reason: string, err?: Error): void
}

export class RedisHistory implements RoomsHistory {
  private readonly link: HistoryLink

  constructor (link: HistoryLink) {
    this.link = link
  }

  private limits (): HistoryLimits {
    const limits = this.link.historyLimits
    if (limits === undefined) throw new Error('history is off')
    return limits
  }

  async publish (room: string, head: string, sep: string, except: string | undefined): Promise<{ epoch: string, offset: number }> {
    const pub = this.link.writable()
    if (pub === undefined) throw new Error('Redis is unreachable, so the room\'s messages cannot be ordered')
    const { size, ttlMs } = this.limits()
    const keys = this.link.keys.room(room)
    let reply: unknown
    try {
      reply = await PUBLISH_HISTORY.run(pub, [keys.meta, keys.stream],
        [head, sep, size, ttlMs, newEpoch(), except ?? '', this.link.publishCommand, keys.channel])
    } catch (err) {
      this.link.down('a history publish failed', err as Error)
      throw err
    }
    const [epoch, offset] = reply as [string, number]
    return { epoch: String(epoch), offset: Number(offset) }
  }

  async read (room: string, after: number, limit?: number): Promise<HistoryPage> {
    const pub = this.link.writable()
    if (pub === undefined) throw new Error('Redis is unreachable, so the room\'s history cannot be read')
    const { ttlMs } = this.limits()
    const keys = this.link.keys.room(room)
    const reply = await withTimeout(READ_HISTORY.run(pub, [keys.meta, keys.stream], [after, limit ?? -1, ttlMs, newEpoch()]), this.link.readTimeoutMs) as unknown[]
    const [epoch, last, complete] = reply
    const messages: HistoryPage['messages'] = []
    // After the three head fields: offset, payload, except (empty when none), per message.
    for (let i = 3; i + 2 < reply.length; i += 3) {
      const except = String(reply[i + 2])
      messages.push(except === ''
        ? { offset: Number(reply[i]), payload: String(reply[i + 1]) }
        : { offset: Number(reply[i]), payload: String(reply[i + 1]), except })
    }
    return { epoch: String(epoch), offset: Number(last), messages, complete: Number(complete) === 1 }
  }
}
