// A session refreshed on the live connection: the `refresh` frame runs authenticate again; the
// same user swaps user, grants and expiry at once (rooms no longer granted are left), without any
// member seeing a leave or a join. Every refusal is `forbidden` with the frame's id and leaves the
// old session as it was; refresh frames count against the rate limit.
import t from 'tap'
import type { AuthenticatedSession, WsRoomsOptions } from '../types/index.js'
import { captureLogs, closedWithin, join, roundTrip, serve } from './helpers.js'

type Result = AuthenticatedSession | { id: string, [k: string]: unknown } | null

/** Tokens name entries of `table`; a function entry is called (to throw, or to compute an expiry). */
function byTable (table: Record<string, Result | (() => Result)>, calls?: Array<{ token: string, request: any }>): WsRoomsOptions['authenticate'] {
  return (token, request) => {
    calls?.push({ token, request })
    const entry = table[token]
    return typeof entry === 'function' ? entry() : entry ?? null
  }
}

const bearer = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } })
const presenceOrJoinLeave = (frames: any[]): any[] => frames.filter((m) => m?.type === 'system' && ['join', 'leave', 'presence'].includes(m.event))

t.test('a refresh with the same user: ack with the new expiresAt, the old expiry no longer closes the connection', async (t) => {
  const calls: Array<{ token: string, request: any }> = []
  const s = await serve(t, {
    authenticate: byTable({
      first: () => ({ user: { id: 'ann' }, expiresAt: Date.now() + 400 }),
      second: () => ({ user: { id: 'ann', name: 'Ann' }, expiresAt: Date.now() + 600_000 }),
      forever: { id: 'ann', name: 'Ann B.' }
    }, calls)
  })
  const ann = await s.open({ ...bearer('first'), headers: { authorization: 'Bearer first', 'x-tenant': 't1' } })
  const ben = await s.open(bearer('forever'))
  t.type(ann.welcome.expiresAt, 'number')
  await join(ann, 'r')
  await join(ben, 'r')
  await ben.next({ type: 'system', event: 'join' })
  const ack = await ann.request({ type: 'refresh', token: 'second' }, 'r1')
  t.equal(ack.type, 'ack')
  t.equal(ack.id, 'r1')
  t.ok(ack.data.expiresAt > Date.now() + 500_000, 'the new expiresAt')
  const refreshCall = calls.at(-1)!
  t.equal(refreshCall.token, 'second')
  t.equal(refreshCall.request.headers['x-tenant'], 't1', 'authenticate gets the upgrade\'s headers on a refresh')
  t.equal(refreshCall.request.ip, '127.0.0.1')
  t.match(refreshCall.request.url, /^\/ws/)
  t.equal(refreshCall.request.server, s.app, 'and the Fastify instance (a token check may use request.server.jwt)')
  t.type(refreshCall.request.log.info, 'function')
  // Past the first token's expiry: still open, same connection, same rooms.
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.same(await ann.request({ type: 'message', room: 'r', text: 'still here' }, 2), { type: 'ack', id: 2 })
  t.match(await ben.next({ type: 'chat' }), { text: 'still here', user: { id: 'ann', name: 'Ann' } }, 'frames name the refreshed user')
  t.same(await ann.request({ type: 'refresh', token: 'forever' }, 3), { type: 'ack', id: 3, data: {} }, 'no expiresAt: empty data')
  await roundTrip(ben)
  t.same(presenceOrJoinLeave(ben.pending()), [], 'the other member saw no leave or join')
})

t.test('every refusal is forbidden with the frame\'s id, and the old session stays', async (t) => {
  const s = await serve(t, {
    authenticate: byTable({
      ann: { user: { id: 'ann' }, grants: { 'a:*': ['join', 'publish'] } },
      bob: { id: 'bob' },
      stale: () => ({ user: { id: 'ann' }, expiresAt: Date.now() - 1 }),
      badGrants: { user: { id: 'ann' }, grants: { x: ['fly'] } } as any,
      boom: () => { throw new Error('token store down') },
      slow: () => new Promise(() => {}) as any
    }),
    authenticateTimeout: 200
  })
  const ann = await s.open(bearer('ann'))
  const refusals: Array<[string, Record<string, unknown>]> = [
    ['missing token', { type: 'refresh' }],
    ['empty token', { type: 'refresh', token: '' }],
    ['not a string', { type: 'refresh', token: 42 }],
    ['refused token', { type: 'refresh', token: 'nobody' }],
    ['another user', { type: 'refresh', token: 'bob' }],
    ['already expired', { type: 'refresh', token: 'stale' }],
    ['invalid grants', { type: 'refresh', token: 'badGrants' }],
    ['authenticate threw', { type: 'refresh', token: 'boom' }],
    ['authenticate timed out', { type: 'refresh', token: 'slow' }]
  ]
  for (const [why, frame] of refusals) {
    t.same(await ann.request(frame, why), { type: 'error', code: 'forbidden', text: 'Refresh refused: the session is unchanged', id: why }, why)
  }
  // Same user, same grants: a:* still opens, nothing else does.
  await join(ann, 'a:1')
  t.match(await ann.request({ type: 'join', room: 'b' }, 'g'), { code: 'forbidden', id: 'g' })
  t.equal(ann.ws.readyState, ann.ws.OPEN)
})

t.test('without authenticate, a refresh is refused', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  t.match(await a.request({ type: 'refresh', token: 'x' }, 1), { type: 'error', code: 'forbidden', id: 1 })
})

for (const mode of ['each', 'batched'] as const) {
  t.test(`a refresh that drops a grant: removed to the connection, the others see the leave (${mode}); kept rooms show no leave or join`, async (t) => {
    const s = await serve(t, {
      authenticate: byTable({
        wide: { user: { id: 'ann' }, grants: { kept: ['join', 'publish'], dropped: ['join', 'publish'], ro: ['join', 'publish'] } },
        narrow: { user: { id: 'ann' }, grants: { kept: ['join', 'publish'], ro: ['join'] } },
        ben: { id: 'ben' }
      }),
      presenceEvents: mode,
      presenceInterval: 20
    })
    const ann = await s.open(bearer('wide'))
    const ben = await s.open(bearer('ben'))
    for (const room of ['kept', 'dropped', 'ro']) { await join(ben, room); await join(ann, room) }
    // Put there by the server, not by a grant: a refresh's grants do not take it out.
    await s.app.rooms.join(ann.welcome.connectionId, 'staff')
    await ann.next({ event: 'added' })
    await s.app.rooms.join(ben.welcome.connectionId, 'staff')
    await ben.next({ event: 'added' })
    // What ben heard of ann's joins, before the refresh.
    if (mode === 'each') for (let i = 0; i < 3; i++) await ben.next((m) => m.event === 'join' && m.user.id === 'ann')
    else await ben.next((m) => m.event === 'presence' && m.room === 'ro' && m.joined.some((u: any) => u.id === 'ann'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await roundTrip(ben)
    ben.pending().length = 0
    const before = ben.received.length

    t.same(await ann.request({ type: 'refresh', token: 'narrow' }, 'n'), { type: 'ack', id: 'n', data: {} })
    const removed = ann.received.filter((m) => m.event === 'removed')
    t.same(removed, [{ type: 'system', event: 'removed', room: 'dropped' }], 'only the room no longer granted join')
    t.match(await ann.request({ type: 'message', room: 'dropped', text: 'x' }, 1), { code: 'not_in_room', id: 1 })
    t.match(await ann.request({ type: 'message', room: 'ro', text: 'x' }, 2), { code: 'forbidden', id: 2 }, 'ro is read-only now')
    t.same(await ann.request({ type: 'message', room: 'kept', text: 'y' }, 3), { type: 'ack', id: 3 })
    await ben.next({ type: 'chat', text: 'y' })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await roundTrip(ben)
    const seen = presenceOrJoinLeave(ben.received.slice(before))
    if (mode === 'each') t.same(seen.map((m) => [m.event, m.room, m.user.id]), [['leave', 'dropped', 'ann']])
    else t.same(seen.map((m) => [m.room, m.joined.length, m.left.map((u: any) => u.id)]), [['dropped', 0, ['ann']]])
    t.same(s.app.rooms.rooms().find((r) => r.room === 'kept'), { room: 'kept', size: 2 })
    t.same(s.app.rooms.rooms().find((r) => r.room === 'staff'), { room: 'staff', size: 2 }, 'the server-joined room is kept')
  })
}

t.test('refresh frames count against the rate limit: a hostile loop gets rate_limited, then 1008, and changes nothing', async (t) => {
  const calls: Array<{ token: string, request: any }> = []
  const s = await serve(t, {
    authenticate: byTable({ ann: { user: { id: 'ann' }, grants: { r: ['join'] } }, mallory: { user: { id: 'mallory' }, grants: { '*': ['join', 'publish'] } } }, calls),
    rateLimit: { max: 5, windowMs: 60_000 }
  })
  const ann = await s.open(bearer('ann'))
  await join(ann, 'r')
  for (let i = 0; i < 20; i++) ann.send({ type: 'refresh', token: i % 2 === 0 ? 'mallory' : 'ann-nope', id: i })
  const closed = await closedWithin(ann)
  t.equal(closed.code, 1008)
  const answers = ann.received.filter((m) => m.type === 'error')
  t.equal(answers.filter((m) => m.code === 'forbidden').length, 4, 'the frames within the limit were handled and refused')
  t.ok(answers.filter((m) => m.code === 'rate_limited').length >= 1)
  t.equal(calls.filter((c) => c.token !== 'ann').length, 4, 'authenticate ran only for frames within the limit')
  t.equal(answers.filter((m) => m.type === 'ack').length, 0)
})

t.test('a refresh token never reaches the log, even in what authenticate throws', async (t) => {
  const secret = 'rEfReSh-sEcReT-9f8e7d'
  const logs = captureLogs()
  const s = await serve(t, {
    authenticate: (token) => {
      if (token === 'ann') return { id: 'ann' }
      throw new Error(`bad token ${token}`)
    }
  }, undefined, { logger: { level: 'trace', stream: logs.stream } })
  const ann = await s.open(bearer('ann'))
  t.match(await ann.request({ type: 'refresh', token: secret }, 1), { code: 'forbidden', id: 1 })
  const text = logs.lines.join('\n')
  t.notMatch(text, secret)
  t.match(text, /bad token \[redacted\]/)
})

t.test('a refresh that widens the grants opens rooms at once; one without grants lifts the check', async (t) => {
  const s = await serve(t, {
    authenticate: byTable({
      narrow: { user: { id: 'ann' }, grants: { a: ['join'] } },
      wider: { user: { id: 'ann' }, grants: { a: ['join', 'publish'], 'b:*': ['join'] } },
      plain: { user: { id: 'ann' }, expiresAt: Date.now() + 600_000 }
    })
  })
  const ann = await s.open(bearer('narrow'))
  await join(ann, 'a')
  t.match(await ann.request({ type: 'join', room: 'b:1' }, 1), { code: 'forbidden', id: 1 })
  t.match(await ann.request({ type: 'message', room: 'a', text: 'x' }, 2), { code: 'forbidden', id: 2 })
  t.same(await ann.request({ type: 'refresh', token: 'wider' }, 3), { type: 'ack', id: 3, data: {} })
  await join(ann, 'b:1')
  t.same(await ann.request({ type: 'message', room: 'a', text: 'x' }, 4), { type: 'ack', id: 4 })
  t.match(await ann.request({ type: 'join', room: 'c' }, 5), { code: 'forbidden', id: 5 })
  const ack = await ann.request({ type: 'refresh', token: 'plain' }, 6)
  t.type(ack.data.expiresAt, 'number')
  await join(ann, 'c')
  t.same([...ann.received.filter((m) => m.event === 'removed')], [], 'nothing was taken away')
})
