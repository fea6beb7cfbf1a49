// History rooms over Redis (docs/history.md), beside the in-memory store of a single node. The
// messages a node publishes to a room within one turn of its event loop go to Redis together: one
// Lua script gives them the room's next offsets in order, appends them to the room's stream
// (trimmed to `size`), refreshes the TTLs and publishes them on the room's channel in one
// publication, atomically; every node, the publisher's included, delivers them from that one
// ordered flow. Reads (joins with `since`, gap
// repair, `fastify.rooms.history()`) run one script on the same keys. While Redis is unreachable
// nothing can be ordered, so publishing rejects.
//
// A batch whose reply was lost (the connection closed after the script was sent) is in doubt
// (docs/history.md#a-reply-lost-on-the-way): the script may have run, and members may have the
// message. Rather than refuse what was delivered, the publisher waits for Redis to be back (at most
// `inDoubtWaitMs`) and looks the publication's id up in the room's stream: found, it resolves with
// the offset the message got; not found, and not trimmed away, it rejects as not published;
// otherwise the outcome stays unknown (rejects, saying so). A publish with no answer within its
// bound (historyPublish in redis-waits.ts: a frozen Redis) is in doubt too, but still under way: it
// waits up to `inDoubtWaitMs` for its own answer (or failure, then as above), else rejects as unknown.
import type { Cluster, Redis } from 'ioredis'
import type { AdapterNode, HistoryLimits, HistoryPage, RoomsHistory } from '../../types/index.js'
import { NoAnswerError, withTimeout } from '../async.js'
import type { KeyNames } from '../adapters/redis-keys.js'
import { FIND_PUBLISHED, PUBLISH_HISTORY_BATCH, READ_HISTORY } from '../adapters/redis-scripts.js'
import { newEpoch } from './epoch.js'

/** What the history store needs of the adapter's connections (RedisLink). */
export interface HistoryLink {
  readonly keys: KeyNames
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  /** nodeId: publication ids start with it; historyLimits: the plugin's `history` option. */
  readonly node: Pick<AdapterNode, 'nodeId' | 'historyLimits' | 'log'>
  /** The command connection when publications can go out now (connected, not stalled), else undefined. */
  writable (): Redis | Cluster | undefined
  /** historyRead: a read, or the lookup of an in-doubt publish; historyPublish: a publish's answer before it is in doubt. */
  waitMs (wait: 'historyRead' | 'historyPublish'): number
  /** How long an in-doubt publish waits for Redis to be back before it gives up. */
  readonly inDoubtWaitMs: number
  down (reason: string, err?: Error): void
  /** Resolves true once Redis is back (resubscribed, presence restored), false after `ms` or on close. */
  whenUp (ms: number): Promise<boolean>
}

/** ioredis's errors for a command it did not write (no offline queue): nothing reached Redis. */
function notSent (err: unknown): boolean {
  const message = (err as Error)?.message ?? ''
  return message.startsWith('Stream isn\'t writeable') || message.startsWith('Cluster isn\'t ready')
}

/** An error reply: Redis refused the script (OOM, BUSY, READONLY, ...), which wrote nothing. */
function refusedByRedis (err: unknown): boolean {
  return (err as Error)?.name === 'ReplyError'
}

/** `promise`'s outcome within `ms`, or undefined when it has none by then. */
async function answerBy<T> (promise: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | undefined> {
  try {
    return { value: await withTimeout(promise, ms, 'Redis') }
  } catch (err) {
    return err instanceof NoAnswerError ? undefined : { error: err }
  }
}

/** Most messages of one room in one script call; more in one turn go in further calls, in order. */
const MAX_BATCH = 256

/** A message waiting for the end of the turn, and its publisher's answer. */
interface Queued {
  head: string
  sep: string
  except: string | undefined
  id: string
  resolve: (published: { epoch: string, offset: number }) => void
  reject: (err: unknown) => void
}

export class RedisHistoryStore implements RoomsHistory {
  private readonly link: HistoryLink
  private published = 0
  /** This turn's messages per room, oldest first; `full` holds batches that reached MAX_BATCH. */
  private readonly queued = new Map<string, Queued[]>()
  private full: Array<[string, Queued[]]> = []
  private flushing = false

  constructor (link: HistoryLink) {
    this.link = link
  }

  private limits (): HistoryLimits {
    const limits = this.link.node.historyLimits
    if (limits === undefined) throw new Error('history is off')
    return limits
  }

  /**
   * Queued for the end of this turn of the event loop: then the room's messages of the turn go to
   * Redis together (send), in the order they were published, in one script call.
   */
  async publish (room: string, head: string, sep: string, except: string | undefined): Promise<{ epoch: string, offset: number }> {
    if (this.link.writable() === undefined) throw new Error('Redis is unreachable, so the room\'s messages cannot be ordered')
    this.limits()
    const id = this.link.node.nodeId + (this.published++).toString(36)
    return await new Promise((resolve, reject) => {
      let list = this.queued.get(room)
      if (list === undefined || list.length >= MAX_BATCH) {
        if (list !== undefined) this.full.push([room, list])
        list = []
        this.queued.set(room, list)
      }
      list.push({ head, sep, except, id, resolve, reject })
      if (!this.flushing) {
        this.flushing = true
        setImmediate(() => this.flush())
      }
    })
  }

  /** Every room's messages of this turn, one script call per room (batches in a room go out in order). */
  private flush (): void {
    this.flushing = false
    const batches = this.full
    this.full = []
    for (const entry of this.queued) batches.push(entry)
    this.queued.clear()
    // Batches of one room went into `full` before the room's last one: the order is kept.
    for (const [room, list] of batches) {
      this.send(room, list).then(({ epoch, offset }) => {
        for (let i = 0; i < list.length; i++) list[i].resolve({ epoch, offset: offset + i })
      }, (err: unknown) => {
        for (const message of list) message.reject(err)
      })
    }
  }

  /** One batch of a room in one script call; resolves with the epoch and the first message's offset. */
  private async send (room: string, list: Queued[]): Promise<{ epoch: string, offset: number }> {
    const pub = this.link.writable()
    if (pub === undefined) throw new Error('Redis is unreachable, so the room\'s messages cannot be ordered')
    const { size, ttlMs } = this.limits()
    const keys = this.link.keys.room(room)
    const args: Array<string | number> = [size, ttlMs, newEpoch(), this.link.publishCommand, keys.channel, list.length]
    for (const m of list) args.push(m.head, m.sep, m.except ?? '', m.id)
    const running = PUBLISH_HISTORY_BATCH.run(pub, [keys.meta, keys.stream], args)
    // The script is atomic: the batch was kept whole or not at all, so its last id tells its outcome.
    const last = list[list.length - 1].id
    const first = (found: { epoch: string, offset: number }): { epoch: string, offset: number } => ({ epoch: found.epoch, offset: found.offset - list.length + 1 })
    let reply: unknown
    try {
      reply = await withTimeout(running, this.link.waitMs('historyPublish'), 'Redis')
    } catch (err) {
      if (!(err instanceof NoAnswerError)) return first(await this.failed(room, last, err as Error, Date.now() + this.link.inDoubtWaitMs))
      // No answer (a frozen Redis closes nothing): in doubt, and still under way. Redis, or a client
      // that retries commands, may still run it, so nothing can be looked up before it settles: wait
      // for its answer, as long as an in-doubt publish waits for Redis.
      const deadline = Date.now() + this.link.inDoubtWaitMs
      const late = await answerBy(running, this.link.inDoubtWaitMs)
      if (late === undefined) {
        throw new Error(`Redis did not answer within ${this.link.waitMs('historyPublish') + this.link.inDoubtWaitMs} ms: whether the message was kept (and delivered) is unknown`, { cause: err })
      }
      if ('error' in late) return first(await this.failed(room, last, late.error as Error, deadline))
      reply = late.value
    }
    const [epoch, offset] = reply as [string, number]
    return { epoch: String(epoch), offset: Number(offset) }
  }

  /** A publish that failed: refused when it surely wrote nothing, else looked up (until `deadline`). */
  private async failed (room: string, id: string, err: Error, deadline: number): Promise<{ epoch: string, offset: number }> {
    this.link.down('a history publish failed', err)
    if (notSent(err) || refusedByRedis(err)) throw err
    return await this.outcome(room, id, err, deadline)
  }

  /** What became of publication `id`, sent and failed without an answer: looked up once Redis is back. */
  private async outcome (room: string, id: string, lost: Error, deadline: number): Promise<{ epoch: string, offset: number }> {
    const { size } = this.limits()
    const keys = this.link.keys.room(room)
    // The publication ran less than that ago (entries and the lookup read the same Redis clock).
    const window = 2 * (this.link.waitMs('historyPublish') + this.link.inDoubtWaitMs + this.link.waitMs('historyRead'))
    let lastError: Error = lost
    while (await this.link.whenUp(deadline - Date.now())) {
      const conn = this.link.writable()
      if (conn === undefined) continue
      let found: [string, number, number]
      try {
        found = await withTimeout(FIND_PUBLISHED.run(conn, [keys.meta, keys.stream], [id, size, window]), this.link.waitMs('historyRead'), 'Redis') as [string, number, number]
      } catch (err) {
        lastError = err as Error
        this.link.down('a history lookup failed', lastError)
        continue
      }
      const [epoch, offset, trimmed] = [String(found[0]), Number(found[1]), Number(found[2])]
      if (offset > 0) {
        this.link.node.log.info({ room, epoch, offset }, 'redis adapter: a history publish whose reply was lost had been kept; acked with its offset')
        return { epoch, offset }
      }
      if (epoch !== '' && trimmed === 0) throw lost // not there, and not trimmed away: the script did not run
      throw new Error(`Redis went away before it answered, and the room's ${epoch === '' ? 'history is gone' : 'stream was trimmed since'}: whether the message was kept (and delivered) is unknown`, { cause: lost })
    }
    throw new Error(`Redis went away before it answered and was not back within ${this.link.inDoubtWaitMs} ms: whether the message was kept (and delivered) is unknown`, { cause: lastError })
  }

  async read (room: string, after: number, limit?: number): Promise<HistoryPage> {
    const pub = this.link.writable()
    if (pub === undefined) throw new Error('Redis is unreachable, so the room\'s history cannot be read')
    const { ttlMs } = this.limits()
    const keys = this.link.keys.room(room)
    const reply = await withTimeout(READ_HISTORY.run(pub, [keys.meta, keys.stream], [after, limit ?? -1, ttlMs, newEpoch()]), this.link.waitMs('historyRead'), 'Redis') as unknown[]
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
