// A history room's stream on this node (docs/history.md): the offset its local members have been given,
// in order and each once. Messages come from the history (`RoomsHistory.publish` delivers every
// message to every node, this one included). A message ahead of the next offset is held while the
// missing ones are read back from the history (gap repair); a join catches up from the history and
// takes the live flow from exactly where its read left off. When the history no longer holds what a
// member missed, or its epoch changed, the members are closed (1012) so they rejoin with `since`
// and are told `recovered: false`: a loss is never passed over in silence.
// A catch-up is queued as the joiner's socket takes it (replay.ts); its ack waits for the last of it.
import type { FastifyBaseLogger } from 'fastify'
import type { HistoryEntry, HistoryPage, RoomsHistory, StreamPosition } from '../types/index.js'
import type { Connection } from './connection.js'
import { RoomFrame } from './frame-writer.js'
import { isPromise } from './async.js'
import { type Joiner, replay } from './replay.js'

export interface StreamHost {
  readonly historyStore: RoomsHistory
  readonly log: FastifyBaseLogger
  readonly maxBufferedBytes: number
  /** A joiner whose waiting live messages and unsent bytes passed maxBufferedBytes: close it (1013). */
  slowConsumer (conn: Connection): void
  /** The members of `room` can no longer be given what they missed: close them (1012) so they rejoin and learn it. */
  historyLost (room: string, reason: string): void
}

/** What a history room's join is acked with. */
export type StreamJoinAck = { epoch: string, offset: number } | { recovered: boolean, epoch: string, offset: number }

export class RoomStream {
  private readonly name: string
  /** The room's local members (joins under way included): the Set its live messages go to. */
  private readonly members: ReadonlySet<Connection>
  private readonly host: StreamHost
  /** undefined until this node knows the room's position (the first join's read tells it). */
  epoch: string | undefined
  /** The last offset given to the local members. */
  offset = 0
  /** Messages ahead of `offset + 1`, oldest first, waiting for the gap before them to be read back. */
  private held: HistoryEntry[] = []
  private repairing = false
  private joiners: Map<Connection, Joiner> | null = null
  /** Members the server joined, with the offset their `added` frame gave; null when none. See `resume`. */
  private added: Map<Connection, number> | null = null

  constructor (name: string, members: ReadonlySet<Connection>, host: StreamHost) {
    this.name = name
    this.members = members
    this.host = host
  }

  // ---- the live flow ----

  accept (entry: HistoryEntry): void {
    if (this.epoch === undefined) {
      // Position unknown: only a join's read in progress will need these.
      if (this.joiners !== null) this.hold(entry)
      return
    }
    if (entry.epoch !== this.epoch) {
      this.lost(`the room's history epoch changed (${this.epoch} → ${entry.epoch})`)
      return
    }
    if (entry.offset <= this.offset) return // seen (a repair read it first)
    if (this.repairing || entry.offset > this.offset + 1) {
      this.hold(entry)
      this.repair()
      return
    }
    this.emit(entry)
    if (this.held.length > 0) this.drainHeld()
  }

  private hold (entry: HistoryEntry): void {
    const held = this.held
    let i = held.length
    while (i > 0 && held[i - 1].offset > entry.offset) i--
    if (i > 0 && held[i - 1].offset === entry.offset) return
    held.splice(i, 0, entry)
  }

  /** Give the next message to every local member (joins catching up buffer it). */
  private emit (entry: HistoryEntry): void {
    this.offset = entry.offset
    const joiners = this.joiners
    // Framed once into the room's frames of this tick, shared by the members' writes (as deliverToRoom).
    const frame = new RoomFrame(this.members, entry.payload)
    let slow: Connection[] | undefined
    for (const conn of this.members) {
      if (conn.id === entry.except) continue
      const joiner = joiners?.get(conn)
      // A join still waiting for an earlier step (its subscription) reads its start later: the read
      // gives it this message (or puts it before the join), never the live flow as well.
      if (joiner === undefined && conn.joining?.has(this.name) === true) continue
      if (joiners !== null) {
        if (joiner !== undefined) {
          if (!joiner.ready) {
            joiner.buffer!.push(entry)
            joiner.bufferedSize += entry.payload.length
            // What waits for a joiner is unsent to it: bounded as its socket's buffer is.
            if (joiner.bufferedSize + conn.unsent > this.host.maxBufferedBytes) (slow ??= []).push(conn)
            continue
          }
          if (entry.offset <= joiner.from) continue
          this.live(conn)
        }
      }
      frame.to(conn)
    }
    // After the loop: closing one takes it out of the members.
    if (slow !== undefined) for (const conn of slow) if (conn.open) this.host.slowConsumer(conn)
  }

  /** Deliver the held messages that follow on; repair when a gap is left before the rest. */
  private drainHeld (): void {
    const held = this.held
    let next = 0
    while (next < held.length) {
      const entry = held[next]
      if (entry.epoch !== this.epoch) {
        this.held = []
        this.lost(`the room's history epoch changed (${this.epoch} → ${entry.epoch})`)
        return
      }
      if (entry.offset > this.offset + 1) break
      next++
      if (entry.offset === this.offset + 1) this.emit(entry)
    }
    held.splice(0, next)
    if (held.length > 0) this.repair()
  }

  /** Read what is missing between `offset` and the first held message (or the history's end) and deliver it. */
  private repair (): void {
    if (this.repairing || this.epoch === undefined) return
    this.repairing = true
    const first = this.held[0]
    const limit = first === undefined ? undefined : first.offset - this.offset - 1
    const epoch = this.epoch
    let page: HistoryPage | Promise<HistoryPage>
    try {
      page = this.host.historyStore.read(this.name, this.offset, limit)
    } catch (err) {
      this.repairFailed(err)
      return
    }
    if (isPromise(page)) page.then((p) => this.repaired(epoch, p), (err: unknown) => this.repairFailed(err))
    else this.repaired(epoch, page)
  }

  private repaired (epoch: string, page: HistoryPage): void {
    this.repairing = false
    if (this.epoch !== epoch) return // lost meanwhile
    if (page.epoch !== epoch) {
      this.lost(`the room's history epoch changed (${epoch} → ${page.epoch})`)
      return
    }
    if (!page.complete && page.offset > this.offset) {
      this.lost(`offsets after ${this.offset} are no longer kept`)
      return
    }
    for (const m of page.messages) {
      if (m.offset === this.offset + 1) this.emit({ epoch, offset: m.offset, payload: m.payload, except: m.except })
    }
    if (this.held.length > 0) this.drainHeld()
  }

  private repairFailed (err: unknown): void {
    this.repairing = false
    this.host.log.error({ err, room: this.name }, 'could not read a history room\'s missing messages; retried when the adapter is back')
  }

  /** The adapter may have missed messages (it resubscribed): catch up with the history's end. */
  resync (): void {
    if (this.epoch === undefined) return
    this.repair()
  }

  /** Nothing the members missed can be given to them: say so by closing them, and start over. */
  private lost (reason: string): void {
    this.epoch = undefined
    this.offset = 0
    this.held = []
    this.joiners = null
    this.added = null
    this.host.historyLost(this.name, reason)
  }

  // ---- joins ----

  /**
   * A local member joins: with `since`, the messages it missed come first (when the history still
   * holds every one of them), then the ack; live messages published meanwhile follow the ack
   * (`activate`), each once.
   */
  join (conn: Connection, since: StreamPosition | undefined): StreamJoinAck | Promise<StreamJoinAck> {
    const settled = this.epoch !== undefined && !this.repairing && this.held.length === 0
    if (since === undefined && settled) {
      // Known position: the joiner takes the live flow from here (what comes before its ack waits for it).
      ;(this.joiners ??= new Map()).set(conn, { from: this.offset, buffer: [], bufferedSize: 0, ready: false })
      return { epoch: this.epoch!, offset: this.offset }
    }
    const joiner: Joiner = { from: -1, buffer: [], bufferedSize: 0, ready: false }
    ;(this.joiners ??= new Map()).set(conn, joiner)
    // Without `since` only the position is needed (limit 0).
    const page = since === undefined
      ? this.host.historyStore.read(this.name, Number.MAX_SAFE_INTEGER, 0)
      : this.host.historyStore.read(this.name, since.offset)
    if (!isPromise(page)) return this.caughtUp(conn, joiner, since, page)
    return page.then((p) => this.caughtUp(conn, joiner, since, p), (err: unknown) => {
      this.leave(conn)
      throw err
    })
  }

  private caughtUp (conn: Connection, joiner: Joiner, since: StreamPosition | undefined, page: HistoryPage): StreamJoinAck | Promise<StreamJoinAck> {
    if (this.epoch === undefined) {
      // The first join since this node subscribed tells it where the room is.
      this.epoch = page.epoch
      this.offset = page.offset
      if (this.held.length > 0) this.drainHeld()
    } else if (page.epoch !== this.epoch) {
      this.lost(`the room's history epoch changed (${this.epoch} → ${page.epoch})`)
      return { epoch: page.epoch, offset: page.offset }
    }
    joiner.from = page.offset
    if (since === undefined) return { epoch: page.epoch, offset: page.offset }
    const recovered = since.epoch === page.epoch && since.offset <= page.offset && page.complete
    if (!recovered || !conn.open) return { recovered, epoch: page.epoch, offset: page.offset }
    const current = (): boolean => this.joiners?.get(conn) === joiner
    // A finished catch-up's ack: the last offset it handed over (the read's end, or a live one after it).
    const recoveredAck = (): StreamJoinAck => ({ recovered: true, epoch: page.epoch, offset: joiner.from })
    const queued = replay({ conn, joiner, page, after: since.offset, next: 0, current }, this.replayBytes)
    // More than the socket may hold now: the rest as it drains, then the ack.
    return queued === undefined ? recoveredAck() : queued.then(recoveredAck)
  }

  /** How many unsent bytes a catch-up may leave its joiner at a time: half, the rest is for live traffic. */
  private get replayBytes (): number {
    return Math.floor(this.host.maxBufferedBytes / 2)
  }

  /** The join's ack is out: hand the joiner what arrived meanwhile, then the live flow. */
  activate (conn: Connection): void {
    const joiner = this.joiners?.get(conn)
    if (joiner === undefined) return
    if (joiner.from < 0) joiner.from = this.offset
    for (const entry of joiner.buffer ?? []) {
      if (entry.offset <= joiner.from || entry.except === conn.id) continue
      conn.sendPayload(entry.payload)
      joiner.from = entry.offset
    }
    joiner.buffer = null
    if (this.offset >= joiner.from) this.live(conn)
    else joiner.ready = true
  }

  private live (conn: Connection): void {
    this.joiners?.delete(conn)
    if (this.joiners?.size === 0) this.joiners = null
  }

  leave (conn: Connection): void {
    if (this.joiners !== null) this.live(conn)
    if (this.added?.delete(conn) === true && this.added.size === 0) this.added = null
  }

  // ---- members the server joined ----

  /** The server joined `conn` (it was told `offset` with `added`): its live messages start after `offset`. */
  markAdded (conn: Connection, offset: number): void {
    (this.added ??= new Map()).set(conn, offset)
  }

  /**
   * A join with `since` from a member the server joined: the client rejoining after a reconnect
   * while the server joined its new connection again (a `connect` listener, joinUser). It recovers
   * from `since` exactly as a fresh join would (missed messages, then the ack, then the live flow)
   * when nothing after the `added` position has been given to it: its server join was not
   * activated yet (it waited for this join), or no message came since. Undefined when it cannot:
   * the caller answers as for any member. A failed read rejects, and the member goes on where it
   * was, nothing lost.
   */
  resume (conn: Connection, since: StreamPosition): StreamJoinAck | Promise<StreamJoinAck> | undefined {
    const from = this.added?.get(conn)
    if (from === undefined || this.epoch === undefined) return undefined
    this.added!.delete(conn)
    let joiner = this.joiners?.get(conn)
    if (joiner === undefined) {
      if (from !== this.offset) return undefined // live messages after `from` went out: too late to put older ones before them
      joiner = { from: -1, buffer: [], bufferedSize: 0, ready: false }
      ;(this.joiners ??= new Map()).set(conn, joiner)
    } else if (joiner.buffer === null) {
      return undefined // activated: it takes live messages already
    }
    const resumed = joiner
    const failed = (err: unknown): never => {
      if (this.joiners?.get(conn) === resumed) { // still a member: give it what arrived during the read
        resumed.from = from
        this.activate(conn)
        this.markAdded(conn, from)
      }
      throw err
    }
    let page: HistoryPage | Promise<HistoryPage>
    try {
      page = this.host.historyStore.read(this.name, since.offset)
    } catch (err) {
      return failed(err)
    }
    if (!isPromise(page)) return this.caughtUp(conn, resumed, since, page)
    return page.then(
      // Taken out of the room during the read: nothing is sent, and the caller's ack is followed by `removed`.
      (p) => this.joiners?.get(conn) === resumed ? this.caughtUp(conn, resumed, since, p) : { recovered: false, epoch: p.epoch, offset: p.offset },
      failed
    )
  }
}
