// CONTRACT §10 on one node: the presence modes, the auto switch, presence frames, the members
// request and fastify.rooms.members(room, { limit }), through real sockets.
import t from 'tap'
import { captureLogs, join, roundTrip, serve, type Fixture, type TestClient } from './helpers.js'

const interval = 100
const isPresence = (room?: string) => (m: any) => m?.type === 'system' && m.event === 'presence' && (room === undefined || m.room === room)
const isJoinOrLeave = (m: any): boolean => m?.type === 'system' && (m.event === 'join' || m.event === 'leave')
const ids = (users: any[]): string[] => users.map((u) => u.id).sort()

async function openMany (s: Fixture, n: number): Promise<Array<TestClient & { welcome: any }>> {
  return await Promise.all(Array.from({ length: n }, async () => await s.open()))
}

/** Wait past the next presence tick, then a round trip, so every frame due has arrived. */
async function settle (clients: TestClient[]): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, interval * 2.5))
  for (const c of clients) await roundTrip(c)
}

t.test('batched: no join/leave events; one presence frame per interval listing who joined and left, with the size', async (t) => {
  const s = await serve(t, { presenceEvents: 'batched', presenceInterval: interval })
  const [a, b, c] = await openMany(s, 3)
  await join(a, 'r')
  await settle([a])
  const first = a.received.filter(isPresence('r'))
  t.equal(first.length, 1, 'the joiner got one presence frame')
  t.strictSame(first[0], { type: 'system', event: 'presence', room: 'r', joined: [a.welcome.user], left: [], size: 1 },
    'the joiner is in joined of its first presence frame')

  await join(b, 'r')
  await join(c, 'r')
  await settle([a, b, c])
  const frame = a.received.filter(isPresence('r'))[1]
  t.same(ids(frame.joined), ids([b.welcome.user, c.welcome.user]), 'both joins of the interval in one frame')
  t.equal(frame.size, 3)
  t.same(b.received.filter(isPresence('r')).length, 1, 'b got one frame, listing itself')
  t.ok(b.received.filter(isPresence('r'))[0].joined.some((u: any) => u.id === b.welcome.user.id))

  await b.request({ type: 'leave', room: 'r' })
  await c.close()
  await settle([a])
  const leaves = a.received.filter(isPresence('r'))[2]
  t.same(ids(leaves.left), ids([b.welcome.user, c.welcome.user]), 'a leave and a disconnect in one frame')
  t.strictSame(leaves.joined, [])
  t.equal(leaves.size, 1, 'the size is exact once the churn stopped')
  for (const client of [a, b]) t.same(client.received.filter(isJoinOrLeave), [], 'no per-member events in batched mode')

  // A room with no change gets no frame.
  const count = a.received.filter(isPresence()).length
  await settle([a])
  t.equal(a.received.filter(isPresence()).length, count, 'no frame without a change')
})

t.test('batched: however fast members churn, at most one presence frame per member per interval', async (t) => {
  const s = await serve(t, { presenceEvents: 'batched', presenceInterval: interval, rateLimit: false })
  const watchers = await openMany(s, 5)
  for (const w of watchers) await join(w, 'busy')
  await settle(watchers)
  const churners = await openMany(s, 10)
  const started = Date.now()
  let churns = 0
  while (Date.now() - started < interval * 6) {
    await Promise.all(churners.map(async (c) => {
      await join(c, 'busy')
      await c.request({ type: 'leave', room: 'busy' })
    }))
    churns += churners.length
  }
  const elapsed = Date.now() - started
  await settle(watchers)
  const frames = watchers[0].received.filter(isPresence('busy')).length - 1
  t.ok(churns >= 50, `${churns} joins and leaves happened`)
  t.ok(frames >= 1 && frames <= Math.ceil(elapsed / interval) + 2, `${frames} presence frames for ${churns} churns in ${elapsed} ms (interval ${interval} ms)`)
  const last = watchers[0].received.filter(isPresence('busy')).at(-1)
  t.equal(last.size, 5, 'the size is exact after the churn')
})

t.test('none: no join, leave or presence frames; fastify.rooms events still fire', async (t) => {
  const events: string[] = []
  const s = await serve(t, { presenceEvents: 'none', presenceInterval: interval }, (app) => {
    app.rooms.on('join', (_conn, room) => { events.push(`join ${room}`) })
    app.rooms.on('leave', (_conn, room) => { events.push(`leave ${room}`) })
  })
  const [a, b] = await openMany(s, 2)
  await join(a, 'r')
  await join(b, 'r')
  await b.request({ type: 'leave', room: 'r' })
  await settle([a, b])
  for (const client of [a, b]) t.same(client.received.filter((m) => m.type === 'system' && m.event !== 'welcome'), [])
  t.same(events, ['join r', 'join r', 'leave r'])
})

t.test('each: v1 events in a room of any size', async (t) => {
  const s = await serve(t, { presenceEvents: 'each', presenceEachMax: 1, presenceInterval: interval })
  const [a, b, c] = await openMany(s, 3)
  for (const client of [a, b, c]) await join(client, 'r')
  await settle([a])
  t.same(a.received.filter(isJoinOrLeave).map((m) => m.user.id), [a, b, c].map((x) => x.welcome.user.id))
  t.same(a.received.filter(isPresence()), [])
})

t.test('auto: each up to presenceEachMax members, batched above, each again below', async (t) => {
  const s = await serve(t, { presenceEachMax: 3, presenceInterval: interval })
  const clients = await openMany(s, 5)
  const [a] = clients
  for (const client of clients.slice(0, 3)) await join(client, 'r')
  await settle([a])
  t.equal(a.received.filter((m) => m.type === 'system' && m.event === 'join').length, 3, 'the first three joins as events')
  t.same(a.received.filter(isPresence()), [])
  await join(clients[3], 'r')
  await join(clients[4], 'r')
  await settle(clients)
  t.equal(a.received.filter((m) => m.type === 'system' && m.event === 'join').length, 3, 'no join events past presenceEachMax')
  const batch = a.received.filter(isPresence('r'))
  t.equal(batch.length, 1)
  t.same(ids(batch[0].joined), ids([clients[3].welcome.user, clients[4].welcome.user]))
  t.equal(batch[0].size, 5)
  t.ok(clients[4].received.filter(isPresence('r'))[0].joined.some((u: any) => u.id === clients[4].welcome.user.id), 'the joiner is in its first frame')
  await clients[4].close()
  await clients[3].close()
  await settle([a])
  // 5 → 4 is still above the bound (batched); 4 → 3 is back to each.
  t.same(a.received.filter(isPresence('r'))[1]?.left.map((u: any) => u.id), [clients[4].welcome.user.id])
  t.same(a.received.filter((m) => m.type === 'system' && m.event === 'leave').map((m) => m.user.id), [clients[3].welcome.user.id])
})

t.test('a presenceEvents function decides per room; a bad answer falls back to batched, logged once per room', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {
    presenceInterval: interval,
    presenceEvents: (room) => {
      if (room === 'throws') throw new Error('boom')
      if (room === 'odd') return 'sometimes' as never
      return room === 'quiet' ? 'none' : 'each'
    }
  }, undefined, { logger: { level: 'error', stream: logs.stream } })
  const [a, b] = await openMany(s, 2)
  for (const room of ['loud', 'quiet', 'throws', 'odd']) {
    await join(a, room)
    await join(b, room)
  }
  await settle([a, b])
  t.equal(a.received.filter((m) => isJoinOrLeave(m) && m.room === 'loud').length, 2)
  t.same(a.received.filter((m) => m.room === 'quiet' && m.type === 'system'), [])
  for (const room of ['throws', 'odd']) {
    t.same(a.received.filter((m) => isJoinOrLeave(m) && m.room === room), [], `${room}: no per-member events`)
    t.equal(a.received.filter(isPresence(room)).length, 1, `${room}: batched instead`)
  }
  const records = logs.records()
  t.equal(records.filter((r) => r.room === 'throws' && /presenceEvents threw/.test(r.msg)).length, 1, 'the throw is logged once')
  t.equal(records.filter((r) => r.room === 'odd' && /presenceEvents returned/.test(r.msg)).length, 1, 'the bad answer is logged once')
})

t.test('the members request: size and members, capped by membersLimit; not_in_room and invalid_room', async (t) => {
  const s = await serve(t, { membersLimit: 3, authenticate: (token) => ({ id: token }) })
  const clients = []
  for (const name of ['ann', 'bob', 'cid', 'dee', 'eve']) {
    const c = await s.open({ headers: { authorization: `Bearer ${name}` } })
    await join(c, 'r')
    clients.push(c)
  }
  const answer = await clients[0].request({ type: 'members', room: 'r' }, 'm1')
  t.equal(answer.type, 'ack')
  t.equal(answer.id, 'm1')
  t.equal(answer.data.size, 5, 'size counts every member')
  t.equal(answer.data.members.length, 3, 'at most membersLimit members')
  for (const m of answer.data.members) {
    t.strictSame(Object.keys(m).sort(), ['connectionId', 'user'])
    t.ok(clients.some((c) => c.welcome.connectionId === m.connectionId && c.welcome.user.id === m.user.id))
  }
  const outsider = await s.open({ headers: { authorization: 'Bearer zed' } })
  const refused = await outsider.request({ type: 'members', room: 'r' }, 'm2')
  t.strictSame({ type: refused.type, code: refused.code, id: refused.id }, { type: 'error', code: 'not_in_room', id: 'm2' })
  t.equal((await outsider.request({ type: 'members', room: '' })).code, 'invalid_room')
  t.equal((await outsider.request({ type: 'members' })).code, 'invalid_message')
  t.equal((await outsider.request({ type: 'members', room: 7 })).code, 'invalid_message')

  const small = await s.app.rooms.members('r', { limit: 2 })
  t.equal(small.length, 2)
  t.equal((await s.app.rooms.members('r')).length, 5, 'members() without a limit lists all')
  await t.rejects(s.app.rooms.members('r', { limit: -1 }), TypeError)
})

t.test('a members answer under the limit is the exact list', async (t) => {
  const s = await serve(t)
  const [a, b] = await openMany(s, 2)
  await join(a, 'r')
  await join(b, 'r')
  const answer = await a.request({ type: 'members', room: 'r' })
  t.equal(answer.data.size, 2)
  t.same(answer.data.members.map((m: any) => m.connectionId).sort(), [a.welcome.connectionId, b.welcome.connectionId].sort())
})

t.test('bad presence options fail register naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ presenceEvents: 'sometimes' }, 'presenceEvents'], [{ presenceEvents: 5 }, 'presenceEvents'], [{ presenceEvents: null }, 'presenceEvents'],
    [{ presenceEachMax: -1 }, 'presenceEachMax'], [{ presenceEachMax: 'x' }, 'presenceEachMax'],
    [{ presenceInterval: 0 }, 'presenceInterval'], [{ presenceInterval: 2.5 }, 'presenceInterval'],
    [{ membersLimit: 0 }, 'membersLimit']
  ]
  for (const [options, name] of cases) {
    await t.rejects(serve(t, options as never), { code: 'FST_WS_ROOMS_INVALID_OPTION', message: new RegExp(`"${name}"`) }, `${JSON.stringify(options)}`)
  }
})
