// lib/presence.ts on its own: which frames a room's local members get for joins and leaves (each,
// batched, none, auto, a function), and which diffs go to the other nodes, with fake deps in place
// of the hub and the cluster link. flush() is called directly except where the interval's own
// timer is what is checked.
import type { FastifyBaseLogger } from 'fastify'
import t from 'tap'
import type { PresenceDiff, PresenceMode } from '../../types/index.js'
import type { Connection } from '../../lib/connection.js'
import type { RoomsParams } from '../../lib/options.js'
import { PresenceBoard, type PresenceDeps } from '../../lib/presence.js'
import { Room } from '../../lib/room.js'

/** The hub's count of diffs heard from other nodes, as it passes them to the board. */
let marks = 0

interface Published { room: string, diff: PresenceDiff, framed: string | undefined }

interface Fixture {
  board: PresenceBoard
  room: Room
  /** Parsed frames delivered to the room's local members, in order. */
  delivered: Array<Record<string, unknown>>
  published: Published[]
  errors: Array<{ obj: Record<string, unknown>, msg: string }>
  /** Resolves at the next delivery. */
  nextDelivery (): Promise<void>
  rooms: Map<string, Room>
}

function fixture (presenceEvents: RoomsParams['presenceEvents'], options: { eachMax?: number, interval?: number } = {}): Fixture {
  const rooms = new Map<string, Room>()
  const delivered: Array<Record<string, unknown>> = []
  const published: Published[] = []
  const errors: Fixture['errors'] = []
  let waiting: (() => void) | undefined
  const noop = (): void => {}
  const log = { error: (obj: Record<string, unknown>, msg: string) => { errors.push({ obj, msg }) }, warn: noop, info: noop, debug: noop, trace: noop, fatal: noop, level: 'info', silent: noop, child: () => log }
  const deps: PresenceDeps = {
    nodeId: 'n1',
    log: log as unknown as FastifyBaseLogger,
    room: (name) => rooms.get(name),
    deliver: (_room, payload) => {
      delivered.push(JSON.parse(payload))
      waiting?.()
    },
    link: { publishPresence: (room, diff, framed) => { published.push({ room, diff: structuredClone(diff), framed }) } }
  }
  const params = { presenceEvents, presenceEachMax: options.eachMax ?? 100, presenceInterval: options.interval ?? 60_000 } as unknown as RoomsParams
  const board = new PresenceBoard(deps, params)
  const room = new Room('r')
  rooms.set('r', room)
  return {
    board,
    room,
    delivered,
    published,
    errors,
    rooms,
    // The board's timer is unref'd: a ref'd one keeps the process up meanwhile, and fails a frame that never comes.
    nextDelivery: () => new Promise((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error('no presence frame within 2 s')), 2000)
      waiting = () => {
        clearTimeout(guard)
        resolve()
      }
    })
  }
}

function member (id: string): Connection {
  const user = { id: 'u-' + id }
  return { id, user, userJson: JSON.stringify(user) } as unknown as Connection
}

/** A local member joins `room` (in its members, then announced) as the hub does. */
function join (f: Fixture, room: Room, id: string): Connection {
  const conn = member(id)
  room.members.add(conn)
  f.board.joined(room, conn)
  return conn
}

function leave (f: Fixture, room: Room, conn: Connection): void {
  room.members.delete(conn)
  f.board.left(room, conn)
}

const users = (...ids: string[]): Array<{ id: string }> => ids.map((id) => ({ id: 'u-' + id }))
const events = (f: Fixture): string[] => f.delivered.map((d) => `${String(d.event)}${d.user === undefined ? '' : ':' + (d.user as { id: string }).id}`)

t.test('each: a join and a leave event at once, each told to the other nodes at once with its framed event', async (t) => {
  const f = fixture('each')
  const a = join(f, f.room, 'a')
  join(f, f.room, 'b')
  leave(f, f.room, a)
  t.same(events(f), ['join:u-a', 'join:u-b', 'leave:u-a'])
  t.same(f.delivered[0], { type: 'system', event: 'join', room: 'r', user: { id: 'u-a' }, text: 'User joined room' })
  t.same(f.published.map((p) => p.diff), [
    { count: 1, changes: [{ joined: true, connectionId: 'a', user: { id: 'u-a' } }] },
    { count: 2, changes: [{ joined: true, connectionId: 'b', user: { id: 'u-b' } }] },
    { count: 1, changes: [{ joined: false, connectionId: 'a', user: { id: 'u-a' } }] }
  ])
  t.same(f.published.map((p) => p.framed === undefined ? undefined : JSON.parse(p.framed).event), ['join', 'join', 'leave'], 'the framed event goes along for adapters without diffs')
  f.board.flush()
  t.equal(f.delivered.length, 3, 'nothing pending at the flush')
  t.equal(f.published.length, 3)
})

t.test('batched: the interval\'s joins and leaves in one presence frame with the size, and one diff', async (t) => {
  const f = fixture('batched')
  const a = join(f, f.room, 'a')
  join(f, f.room, 'b')
  leave(f, f.room, a)
  // The interval (60 s here) has not passed: nothing goes out on its own meanwhile.
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(f.delivered, [], 'nothing before the flush')
  t.same(f.published, [])
  f.board.flush()
  t.same(f.delivered, [{ type: 'system', event: 'presence', room: 'r', joined: users('a', 'b'), left: users('a'), size: 1 }])
  t.equal(f.published.length, 1)
  t.same(f.published[0].diff.changes.map((c) => `${c.joined ? '+' : '-'}${c.connectionId}`), ['+a', '+b', '-a'])
  t.equal(f.published[0].diff.count, 1)
  t.equal(f.published[0].framed, undefined, 'a batch has no framed event')
  f.board.flush()
  t.equal(f.delivered.length, 1, 'nothing new: no second frame')
  t.equal(f.published.length, 1)
})

t.test('batched: the interval\'s own timer sends one frame for all of its changes', async (t) => {
  const f = fixture('batched', { interval: 5 })
  const delivered = f.nextDelivery()
  join(f, f.room, 'a')
  join(f, f.room, 'b')
  join(f, f.room, 'c')
  await delivered
  t.equal(f.delivered.length, 1)
  t.same(f.delivered[0].joined, users('a', 'b', 'c'))
  t.equal(f.delivered[0].size, 3)
  const next = f.nextDelivery()
  join(f, f.room, 'd')
  await next
  t.equal(f.delivered.length, 2)
  t.same(f.delivered[1], { type: 'system', event: 'presence', room: 'r', joined: users('d'), left: [], size: 4 })
})

t.test('batched: a room without local members left gets no frame, the other nodes still hear of it', async (t) => {
  const f = fixture('batched')
  const a = join(f, f.room, 'a')
  leave(f, f.room, a)
  f.board.flush()
  t.same(f.delivered, [])
  t.same(f.published.map((p) => p.diff), [{ count: 0, changes: [{ joined: true, connectionId: 'a', user: { id: 'u-a' } }, { joined: false, connectionId: 'a', user: { id: 'u-a' } }] }])
})

t.test('none: no frame to the members, the other nodes still get the diff', async (t) => {
  const f = fixture('none')
  join(f, f.room, 'a')
  f.board.remote(f.room, 'n2', { count: 1, changes: [{ joined: true, connectionId: 'x', user: { id: 'u-x' } }] }, ++marks)
  f.board.flush()
  t.same(f.delivered, [])
  t.equal(f.published.length, 1)
  t.same(f.published[0].diff, { count: 1, changes: [{ joined: true, connectionId: 'a', user: { id: 'u-a' } }] })
  t.equal(f.room.size, 2)
})

t.test('auto: each up to presenceEachMax members, batched above it, counted across nodes', async (t) => {
  const f = fixture('auto', { eachMax: 2 })
  join(f, f.room, 'a')
  join(f, f.room, 'b')
  t.same(events(f), ['join:u-a', 'join:u-b'])
  join(f, f.room, 'c')
  t.equal(f.delivered.length, 2, 'the third join waits for the batch')
  f.board.flush()
  t.same(f.delivered[2], { type: 'system', event: 'presence', room: 'r', joined: users('c'), left: [], size: 3 })

  // One member here, but the room is bigger across nodes: this node batches too.
  const g = fixture('auto', { eachMax: 2 })
  g.board.remote(g.room, 'n2', { count: 2, changes: [] }, ++marks)
  join(g, g.room, 'a')
  t.equal(g.board.modeOf(g.room), 'batched')
  t.same(g.delivered, [])
  g.board.flush()
  t.same(g.delivered, [{ type: 'system', event: 'presence', room: 'r', joined: users('a'), left: [], size: 3 }])
  g.board.remote(g.room, 'n2', { count: 0, changes: [] }, ++marks)
  t.equal(g.board.modeOf(g.room), 'each', 'back to each once the other node emptied')
})

t.test('auto: after the room is back to each, pending diffs go out before the each change, in order', async (t) => {
  const f = fixture('auto', { eachMax: 2 })
  join(f, f.room, 'a')
  join(f, f.room, 'b')
  const c = join(f, f.room, 'c') // batched: pending
  leave(f, f.room, c) // each again: told now, after the pending join
  t.equal(f.published.length, 3)
  t.same(f.published[2].diff.changes.map((ch) => `${ch.joined ? '+' : '-'}${ch.connectionId}`), ['+c', '-c'])
  t.equal(f.published[2].diff.count, 2)
  f.board.flush()
  t.equal(f.published.length, 3, 'nothing told twice')
})

t.test('a presenceEvents function: asked once per room; one that throws or answers nonsense means batched, logged once per room', async (t) => {
  const asked: string[] = []
  const choose = (room: string): PresenceMode => {
    asked.push(room)
    if (room === 'r') throw new Error('bad chooser')
    if (room === 'q') return 'sometimes' as PresenceMode
    return 'each'
  }
  const f = fixture(choose)
  const q = new Room('q')
  const ok = new Room('ok')
  f.rooms.set('q', q)
  f.rooms.set('ok', ok)
  for (const id of ['a', 'b', 'c']) {
    join(f, f.room, id)
    join(f, q, id)
    join(f, ok, id)
  }
  t.same(asked, ['r', 'q', 'ok'])
  t.equal(f.errors.length, 2, 'one log line per room')
  t.same(f.errors.map((e) => e.obj.room), ['r', 'q'])
  t.match(String(f.errors[0].obj.err), /bad chooser/)
  t.match(f.errors[1].msg, /neither each, batched nor none/)
  t.equal(f.board.modeOf(f.room), 'batched')
  t.equal(f.board.modeOf(q), 'batched')
  t.equal(events(f).length, 3, 'the room with a good answer had its each events')
  f.board.flush()
  t.same(f.delivered.slice(3).map((d) => [d.room, d.joined]), [['r', users('a', 'b', 'c')], ['q', users('a', 'b', 'c')]])
  // The room emptied and came back (a new Room): asked again, not logged again.
  const again = new Room('r')
  f.rooms.set('r', again)
  join(f, again, 'd')
  t.same(asked, ['r', 'q', 'ok', 'r'])
  t.equal(f.errors.length, 2)
  t.equal(f.board.modeOf(again), 'batched')
})

t.test('remote diffs: the size follows the other nodes\' counts, their changes framed by this node\'s mode', async (t) => {
  const f = fixture('batched')
  join(f, f.room, 'a')
  f.board.remote(f.room, 'n2', { count: 2, changes: [{ joined: true, connectionId: 'x', user: { id: 'u-x' } }, { joined: true, connectionId: 'y', user: { id: 'u-y' } }] }, ++marks)
  f.board.remote(f.room, 'n3', { count: 1, changes: [{ joined: true, connectionId: 'z', user: { id: 'u-z' } }] }, ++marks)
  t.equal(f.room.size, 4)
  f.board.flush()
  t.same(f.delivered, [{ type: 'system', event: 'presence', room: 'r', joined: users('a', 'x', 'y', 'z'), left: [], size: 4 }])
  t.equal(f.published.length, 1, 'only this node\'s own change is told to the others')
  f.board.remote(f.room, 'n2', { count: 0, changes: [{ joined: false, connectionId: 'x', user: { id: 'u-x' } }, { joined: false, connectionId: 'y', user: { id: 'u-y' } }] }, ++marks)
  t.equal(f.room.size, 2)
  f.board.flush()
  t.same(f.delivered[1], { type: 'system', event: 'presence', room: 'r', joined: [], left: users('x', 'y'), size: 2 })

  const g = fixture('each')
  join(g, g.room, 'a')
  g.board.remote(g.room, 'n2', { count: 1, changes: [{ joined: true, connectionId: 'x', user: { id: 'u-x' } }] }, ++marks)
  t.same(events(g), ['join:u-a', 'join:u-x'])
  t.equal(g.room.size, 2)
})

// A heartbeat's read of the nodes' counts, sent before a diff was heard and answered after it,
// set the diff's newer count back: the last presence frame could say 3 members of 4.
t.test('a read of the counts sent before a diff does not undo the diff\'s count', async (t) => {
  const room = new Room('r')
  room.setRemoteCount('n2', 1, ++marks)
  const readMark = marks // a read of the counts starts here
  room.setRemoteCount('n2', 2, ++marks) // then n2's next diff is heard
  room.setRemoteCounts(new Map([['n2', 1], ['n3', 4]]), 'n1', readMark) // and the read answers
  t.equal(room.size, 6, 'n2 keeps the count of its newer diff (2), n3 takes the read\'s (4)')
  room.setRemoteCounts(new Map([['n2', 3]]), 'n1', marks)
  t.equal(room.size, 3, 'a read sent after every diff heard replaces them all')
  room.setRemoteCounts(new Map(), 'n1', marks)
  t.equal(room.size, 0, 'and a node it no longer lists has none')
})
