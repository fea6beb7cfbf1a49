// lib/room-stream.ts on its own: a history room's ordered flow with fake members and a fake history
// store (one that answers at once and one that answers with a promise). What each member was
// handed, in order, is the whole check: gaps are read back before later messages, nothing is
// given twice, a joiner takes the live flow from exactly where its catch-up ended.
import type { FastifyBaseLogger } from 'fastify'
import t from 'tap'
import type { HistoryEntry, HistoryPage, RoomsHistory, StreamPosition } from '../../types/index.js'
import type { Connection } from '../../lib/connection.js'
import { RoomStream, type StreamHost, type StreamJoinAck } from '../../lib/room-stream.js'

const ROOM = 'r'
const EPOCH = 'e1'

/** A payload that names its offset; padded so byte counts are easy to reason about (20 each). */
function payload (offset: number): string {
  return `m${offset}`.padEnd(20, '.')
}

function entry (offset: number, options: { epoch?: string, except?: string } = {}): HistoryEntry {
  return { epoch: options.epoch ?? EPOCH, offset, payload: payload(offset), except: options.except }
}

/** The offsets of what a member was handed, in order (payloads decoded back). */
function offsets (member: FakeMember): number[] {
  return member.received.map((p) => Number(p.slice(1).replace(/\.+$/, '')))
}

/** What RoomStream uses of a Connection. Records every payload handed to it, whichever way. */
class FakeMember {
  readonly id: string
  open = true
  joining: Set<string> | null = null
  unsent = 0
  readonly received: string[] = []
  /** `unsent` when each catch-up payload was handed over (sendPayload). */
  readonly unsentAtSend: number[] = []
  /** The limits whenUnsentAtMost was called with. */
  readonly drainWaits: number[] = []
  /** Catch-up payloads add to `unsent` until the fake socket drains (whenUnsentAtMost). */
  countUnsent = false

  constructor (id: string) {
    this.id = id
  }

  deliverBatched (_batch: unknown, _index: number, text: string): void { this.received.push(text) }
  deliver (_frame: Buffer, text: string): void { this.received.push(text) }
  sendPayload (text: string): void {
    this.unsentAtSend.push(this.unsent)
    if (this.countUnsent) this.unsent += text.length
    this.received.push(text)
  }

  /** The socket takes everything on the next turn of the event loop. */
  whenUnsentAtMost (limit: number): Promise<void> {
    this.drainWaits.push(limit)
    return new Promise((resolve) => setImmediate(() => {
      this.unsent = 0
      resolve()
    }))
  }

  get conn (): Connection { return this as unknown as Connection }
}

/**
 * A room's history: the published log, trimmed below `firstKept`. `read` answers from the log as
 * it is when called (a promise-returning store resolves that page later). `script` (pages or
 * errors) answers the next reads instead, in order.
 */
class FakeHistory implements RoomsHistory {
  epoch = EPOCH
  readonly log: HistoryEntry[] = []
  firstKept = 1
  readonly reads: Array<{ after: number, limit: number | undefined }> = []
  readonly script: Array<HistoryPage | Error> = []
  readonly async: boolean

  constructor (async: boolean) {
    this.async = async
  }

  /** Publish offsets up to `last` (the store holds them; delivering them is the test's job). */
  upTo (last: number): this {
    for (let o = this.log.length + 1; o <= last; o++) this.log.push(entry(o))
    return this
  }

  publish (): never {
    throw new Error('not used by RoomStream')
  }

  read (_room: string, after: number, limit?: number): HistoryPage | Promise<HistoryPage> {
    this.reads.push({ after, limit })
    const scripted = this.script.shift()
    const answer = scripted ?? this.page(after, limit)
    if (answer instanceof Error) {
      if (this.async) return Promise.reject(answer)
      throw answer
    }
    return this.async ? Promise.resolve(answer) : answer
  }

  private page (after: number, limit: number | undefined): HistoryPage {
    const last = this.log.length
    const kept = this.log.filter((e) => e.offset > after && e.offset >= this.firstKept)
    const messages = kept.slice(0, limit ?? kept.length).map((e) => ({ offset: e.offset, payload: e.payload, except: e.except }))
    return { epoch: this.epoch, offset: last, messages, complete: after >= this.firstKept - 1 || after >= last }
  }
}

interface Fixture {
  stream: RoomStream
  members: Set<Connection>
  store: FakeHistory
  lost: string[]
  slow: Connection[]
  errors: Array<Record<string, unknown>>
  /** A member in the room, joined without `since` and activated (taking the live flow). */
  live (id: string): Promise<FakeMember>
}

function fixture (async: boolean, options: { maxBufferedBytes?: number } = {}): Fixture {
  const store = new FakeHistory(async)
  const lost: string[] = []
  const slow: Connection[] = []
  const errors: Array<Record<string, unknown>> = []
  const noop = (): void => {}
  const log = { error: (obj: Record<string, unknown>) => { errors.push(obj) }, warn: noop, info: noop, debug: noop, trace: noop, fatal: noop, level: 'info', silent: noop, child: () => log }
  const host: StreamHost = {
    historyStore: store,
    log: log as unknown as FastifyBaseLogger,
    maxBufferedBytes: options.maxBufferedBytes ?? 1 << 20,
    slowConsumer: (conn) => { slow.push(conn) },
    historyLost: (room, reason) => { lost.push(`${room}: ${reason}`) }
  }
  const members = new Set<Connection>()
  const stream = new RoomStream(ROOM, members, host)
  return {
    stream,
    members,
    store,
    lost,
    slow,
    errors,
    async live (id) {
      const member = new FakeMember(id)
      members.add(member.conn)
      await stream.join(member.conn, undefined)
      stream.activate(member.conn)
      return member
    }
  }
}

/** Let promise answers (and the fake sockets' drains) run. */
function settle (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

async function join (f: Fixture, id: string, since: StreamPosition | undefined): Promise<{ member: FakeMember, ack: StreamJoinAck }> {
  const member = new FakeMember(id)
  f.members.add(member.conn)
  const ack = await f.stream.join(member.conn, since)
  return { member, ack }
}

for (const variant of ['sync', 'async'] as const) {
  const async = variant === 'async'

  t.test(`${variant} store: live messages in order reach every member, the sender's skipped`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    const b = await f.live('b')
    f.store.upTo(3)
    f.stream.accept(entry(1))
    f.stream.accept(entry(2, { except: 'a' }))
    f.stream.accept(entry(3))
    t.same(offsets(a), [1, 3])
    t.same(offsets(b), [1, 2, 3])
    t.equal(f.stream.offset, 3)
    t.equal(f.store.reads.length, 1, 'only the first join reads the history')
  })

  t.test(`${variant} store: a gap is held, read back, and delivered before the later message`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(4)
    f.stream.accept(entry(1))
    f.stream.accept(entry(4))
    if (async) t.same(offsets(a), [1], 'the later message waits for the read')
    await settle()
    t.same(offsets(a), [1, 2, 3, 4])
    t.same(f.store.reads.at(-1), { after: 1, limit: 2 }, 'the read asks for exactly the gap')
    // The gap's messages arriving late change nothing.
    f.stream.accept(entry(2))
    f.stream.accept(entry(3))
    f.stream.accept(entry(5))
    t.same(offsets(a), [1, 2, 3, 4, 5])
    t.same(f.lost, [])
  })

  t.test(`${variant} store: duplicates and offsets already given are dropped`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(5)
    f.stream.accept(entry(1))
    f.stream.accept(entry(2))
    f.stream.accept(entry(2))
    f.stream.accept(entry(1))
    // Held twice while the gap before it is read: still handed over once.
    f.stream.accept(entry(5))
    f.stream.accept(entry(5))
    f.stream.accept(entry(4))
    await settle()
    f.stream.accept(entry(3))
    f.stream.accept(entry(5))
    t.same(offsets(a), [1, 2, 3, 4, 5])
  })

  t.test(`${variant} store: a new epoch in the live flow or a repair read closes the members through historyLost`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(1)
    f.stream.accept(entry(1))
    f.stream.accept(entry(2, { epoch: 'e2' }))
    t.equal(f.lost.length, 1)
    t.match(f.lost[0], /^r: .*e1 → e2/)
    t.equal(f.stream.epoch, undefined, 'the position is forgotten')
    t.same(offsets(a), [1], 'nothing of the new epoch is passed on as if it followed')

    const g = fixture(async)
    const b = await g.live('b')
    g.store.upTo(3)
    g.stream.accept(entry(1))
    g.store.epoch = 'e9'
    g.stream.accept(entry(3))
    await settle()
    t.equal(g.lost.length, 1)
    t.match(g.lost[0], /e1 → e9/)
    t.same(offsets(b), [1])
  })

  t.test(`${variant} store: a gap the history no longer holds closes the members through historyLost`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(5)
    f.stream.accept(entry(1))
    f.store.firstKept = 4 // 2 and 3 were trimmed
    f.stream.accept(entry(5))
    await settle()
    t.equal(f.lost.length, 1)
    t.match(f.lost[0], /after 1 are no longer kept/)
    t.same(offsets(a), [1])
  })

  t.test(`${variant} store: a joiner catching up buffers live messages and gets each once after activate`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(2)
    f.stream.accept(entry(1))
    f.stream.accept(entry(2))
    const b = new FakeMember('b')
    f.members.add(b.conn)
    const pending = f.stream.join(b.conn, { epoch: EPOCH, offset: 1 })
    // Published while the join reads (the page may or may not hold them).
    f.store.upTo(4)
    f.stream.accept(entry(3))
    f.stream.accept(entry(4))
    const ack = await pending
    t.same(ack, { recovered: true, epoch: EPOCH, offset: async ? 4 : 2 })
    t.same(offsets(b), [2, 3, 4].filter((o) => o <= ack.offset), 'nothing after the ack\'s offset before the ack is out')
    f.stream.accept(entry(5)) // after the ack, before activate: waits for it
    t.same(offsets(b), [2, 3, 4].filter((o) => o <= ack.offset))
    f.stream.activate(b.conn)
    f.stream.accept(entry(6))
    t.same(offsets(b), [2, 3, 4, 5, 6])
    t.same(offsets(a), [1, 2, 3, 4, 5, 6])
  })

  t.test(`${variant} store: a joiner whose read is ahead of the live flow skips what it already has`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(4) // 3 and 4 not delivered on this node yet
    f.stream.accept(entry(1))
    f.stream.accept(entry(2))
    const { member: b, ack } = await join(f, 'b', { epoch: EPOCH, offset: 1 })
    t.same(ack, { recovered: true, epoch: EPOCH, offset: 4 })
    f.stream.accept(entry(3)) // before activate: waits, then is seen to be had already
    f.stream.activate(b.conn)
    f.stream.accept(entry(4))
    f.stream.accept(entry(5))
    t.same(offsets(b), [2, 3, 4, 5])
    t.same(offsets(a), [1, 2, 3, 4, 5])
  })

  t.test(`${variant} store: since complete → recovered with the missed messages in order; incomplete → not recovered, nothing replayed`, async (t) => {
    const f = fixture(async)
    await f.live('a')
    f.store.upTo(5)
    for (let o = 1; o <= 5; o++) f.stream.accept(entry(o))

    const { member: b, ack: recovered } = await join(f, 'b', { epoch: EPOCH, offset: 2 })
    t.same(recovered, { recovered: true, epoch: EPOCH, offset: 5 })
    t.same(offsets(b), [3, 4, 5])

    f.store.firstKept = 4
    const { member: c, ack: trimmed } = await join(f, 'c', { epoch: EPOCH, offset: 2 })
    t.same(trimmed, { recovered: false, epoch: EPOCH, offset: 5 })
    t.same(offsets(c), [])

    const { member: d, ack: otherEpoch } = await join(f, 'd', { epoch: 'e0', offset: 4 })
    t.same(otherEpoch, { recovered: false, epoch: EPOCH, offset: 5 })
    t.same(offsets(d), [])
    t.same(f.lost, [])
  })

  t.test(`${variant} store: a failing repair read is logged, and resync() repairs`, async (t) => {
    const f = fixture(async)
    const a = await f.live('a')
    f.store.upTo(3)
    f.stream.accept(entry(1))
    f.store.script.push(new Error('store down'))
    f.stream.accept(entry(3))
    await settle()
    t.equal(f.errors.length, 1)
    t.equal(f.errors[0].room, ROOM)
    t.match(String(f.errors[0].err), /store down/)
    t.same(offsets(a), [1], 'the held message waits')
    f.stream.resync()
    await settle()
    t.same(offsets(a), [1, 2, 3])
    // Missed without a trace (the adapter resubscribed): resync reads to the history's end.
    f.store.upTo(5)
    f.stream.resync()
    await settle()
    t.same(offsets(a), [1, 2, 3, 4, 5])
    t.same(f.lost, [])
  })

  t.test(`${variant} store: a member the server joined resumes from since while nothing went out after its added position`, async (t) => {
    const f = fixture(async)
    await f.live('a')
    f.store.upTo(2)
    f.stream.accept(entry(1))
    f.stream.accept(entry(2))
    const c = new FakeMember('c')
    f.members.add(c.conn)
    f.stream.markAdded(c.conn, 2)
    t.equal(f.stream.resume(new FakeMember('x').conn, { epoch: EPOCH, offset: 0 }), undefined, 'not server-joined: nothing to resume')
    const ack = await f.stream.resume(c.conn, { epoch: EPOCH, offset: 0 })
    t.same(ack, { recovered: true, epoch: EPOCH, offset: 2 })
    f.stream.activate(c.conn)
    f.stream.accept(entry(3))
    t.same(offsets(c), [1, 2, 3])

    // A live message went out to it after its added position: too late to put older ones first.
    const d = new FakeMember('d')
    f.members.add(d.conn)
    f.stream.markAdded(d.conn, 3)
    f.stream.accept(entry(4))
    t.equal(f.stream.resume(d.conn, { epoch: EPOCH, offset: 0 }), undefined)
    t.same(offsets(d), [4])
  })
}

t.test('a catch-up larger than half of maxBufferedBytes is paced by the socket and acked with the last offset handed over', async (t) => {
  const maxBufferedBytes = 200 // a catch-up step may leave 100 bytes unsent: 5 payloads of 20
  const f = fixture(false, { maxBufferedBytes })
  await f.live('a')
  f.store.upTo(20) // 400 bytes
  for (let o = 1; o <= 20; o++) f.stream.accept(entry(o))
  const b = new FakeMember('b')
  b.countUnsent = true
  f.members.add(b.conn)
  const pending = f.stream.join(b.conn, { epoch: EPOCH, offset: 0 })
  t.ok(pending instanceof Promise, 'not all of it fits at once')
  t.ok(offsets(b).length < 20, 'the rest waits for the socket')
  // Live messages while it is paced come after the catch-up, and before the ack.
  f.store.upTo(22)
  f.stream.accept(entry(21))
  f.stream.accept(entry(22))
  const ack = await pending
  t.same(ack, { recovered: true, epoch: EPOCH, offset: 22 })
  t.same(offsets(b), Array.from({ length: 22 }, (_, i) => i + 1))
  t.ok(b.drainWaits.length >= 3, `waited for the socket (${b.drainWaits.length} times)`)
  t.ok(b.drainWaits.every((limit) => limit === maxBufferedBytes / 2), 'each time for half of maxBufferedBytes')
  t.ok(Math.max(...b.unsentAtSend) <= maxBufferedBytes / 2, 'never handed more while more than half was unsent')
  t.same(f.slow, [])
  f.stream.activate(b.conn)
  f.stream.accept(entry(23))
  t.same(offsets(b).slice(-2), [22, 23])
})
