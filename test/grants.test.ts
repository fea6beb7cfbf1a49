// Who may publish where: `authorizePublish` and the grants `authenticate` returns. Each refusal is
// `forbidden` (a throw: `internal_error`) carrying the frame's id, and nothing reaches the room.
import t, { type Test } from 'tap'
import type { AuthenticatedSession, WsRoomsOptions } from '../types/index.js'
import { captureLogs, join, refusedUpgrade, roundTrip, serve, type TestClient } from './helpers.js'
import { InvalidOptionError } from '../lib/errors.js'
import Fastify from 'fastify'
import wsRooms from '../lib/index.js'

/** Tokens are keys of `sessions`: what authenticate returns for each. */
function byTable (sessions: Record<string, AuthenticatedSession | { id: string }>): WsRoomsOptions['authenticate'] {
  return (token) => sessions[token] ?? null
}

/** `client` received no chat in `room` up to now. */
async function noChat (t: Test, client: TestClient, room: string): Promise<void> {
  await roundTrip(client)
  t.same(client.pending().filter((m) => m.type === 'chat' && m.room === room), [], `nothing reached ${room}`)
}

t.test('authorizePublish: false refuses with forbidden, a throw with internal_error, nothing delivered, the frame id on the error', async (t) => {
  const seen: any[] = []
  const s = await serve(t, {
    authenticate: byTable({ ann: { id: 'ann' }, ben: { id: 'ben' } }),
    authorizePublish: (user, room, frame) => {
      seen.push({ user: user.id, room, frame })
      if (frame.text === 'boom') throw new Error('publish check failed')
      if (frame.text === 'later') return Promise.resolve(true)
      if (frame.text === 'later-no') return Promise.resolve(false)
      return room !== 'quiet'
    }
  })
  const ann = await s.open({ headers: { authorization: 'Bearer ann' } })
  const ben = await s.open({ headers: { authorization: 'Bearer ben' } })
  for (const c of [ann, ben]) { await join(c, 'quiet'); await join(c, 'open') }

  t.match(await ann.request({ type: 'message', room: 'quiet', text: 'hi' }, 7), { type: 'error', code: 'forbidden', id: 7, text: 'Not allowed to publish to "quiet"' })
  t.match(await ann.request({ type: 'message', room: 'open', text: 'boom' }, 'x'), { type: 'error', code: 'internal_error', id: 'x' })
  t.match(await ann.request({ type: 'message', room: 'open', text: 'later-no' }, 8), { type: 'error', code: 'forbidden', id: 8 })
  await noChat(t, ben, 'quiet')
  t.same(ben.pending().filter((m) => m.type === 'chat'), [], 'neither the refused nor the throwing message was delivered')

  t.same(await ann.request({ type: 'message', room: 'open', text: 'fine' }, 9), { type: 'ack', id: 9 })
  t.match(await ben.next({ type: 'chat' }), { room: 'open', text: 'fine', user: { id: 'ann' } })
  t.same(await ann.request({ type: 'message', room: 'open', text: 'later' }, 10), { type: 'ack', id: 10 })
  t.match(await ben.next({ type: 'chat' }), { room: 'open', text: 'later' })
  t.match(seen[0], { user: 'ann', room: 'quiet', frame: { type: 'message', room: 'quiet', text: 'hi', id: 7 } }, 'it gets the user, the room and the frame')
})

t.test('authorizePublish: the sender\'s later frames wait for its answer, so replies keep their order', async (t) => {
  let open!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  const s = await serve(t, { authorizePublish: async () => { await gate; return true } })
  const a = await s.open()
  await join(a, 'r')
  a.send({ type: 'message', room: 'r', text: 'one', id: 1 })
  a.send({ type: 'leave', room: 'r', id: 2 })
  setTimeout(open, 50)
  t.same(await a.next({ type: 'ack' }), { type: 'ack', id: 1 })
  t.same(await a.next({ type: 'ack' }), { type: 'ack', id: 2 })
})

t.test('authorizePublish must be a function', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsRooms, { authorizePublish: true as any }) }, new InvalidOptionError('authorizePublish', 'expected a function, got true'))
})

t.test('grants: join and publish by room name, prefix* and *; refused joins never reach authorizeJoin', async (t) => {
  const asked: string[] = []
  const s = await serve(t, {
    authenticate: byTable({
      agent: { user: { id: 'agent' }, grants: { 'support:*': ['join', 'publish'], lobby: ['join'] } },
      customer: { user: { id: 'cust' }, grants: { 'support:cust': ['join', 'publish'], 'news:*': ['join'] } },
      admin: { user: { id: 'admin' }, grants: { '*': ['join', 'publish'] } },
      plain: { id: 'plain' }
    }),
    authorizeJoin: (_user, room) => { asked.push(room); return room !== 'closed' }
  })
  const agent = await s.open({ headers: { authorization: 'Bearer agent' } })
  const customer = await s.open({ headers: { authorization: 'Bearer customer' } })
  const admin = await s.open({ headers: { authorization: 'Bearer admin' } })
  const plain = await s.open({ headers: { authorization: 'Bearer plain' } })

  t.match(await customer.request({ type: 'join', room: 'support:other' }, 1), { type: 'error', code: 'forbidden', id: 1, text: 'Not allowed to join "support:other"' })
  t.match(await customer.request({ type: 'join', room: 'lobby' }, 2), { type: 'error', code: 'forbidden', id: 2 })
  t.match(await agent.request({ type: 'join', room: 'support' }, 3), { type: 'error', code: 'forbidden', id: 3 }, 'the prefix "support:" does not match "support"')
  t.same(asked, [], 'authorizeJoin was not asked for a join the grants refused')

  await join(agent, 'support:cust')
  await join(customer, 'support:cust')
  await join(customer, 'news:today')
  await join(admin, 'news:today')
  await join(agent, 'lobby')
  await join(plain, 'lobby')
  t.match(await admin.request({ type: 'join', room: 'closed' }, 4), { type: 'error', code: 'forbidden', id: 4 }, 'with a grant, authorizeJoin still decides')
  t.same(await plain.request({ type: 'join', room: 'anything' }, 5), { type: 'ack', id: 5 }, 'no grants: v2 behaviour')

  // news:* is read-only for the customer: it reads what the admin posts, cannot post itself.
  t.match(await customer.request({ type: 'message', room: 'news:today', text: 'spam' }, 6), { type: 'error', code: 'forbidden', id: 6, text: 'Not allowed to publish to "news:today"' })
  await noChat(t, admin, 'news:today')
  t.same(await admin.request({ type: 'message', room: 'news:today', text: 'headline' }, 7), { type: 'ack', id: 7 })
  t.match(await customer.next({ type: 'chat' }), { room: 'news:today', text: 'headline' })
  t.match(await agent.request({ type: 'message', room: 'lobby', text: 'x' }, 8), { type: 'error', code: 'forbidden', id: 8 }, 'join without publish')
  t.same(await customer.request({ type: 'message', room: 'support:cust', text: 'help' }, 9), { type: 'ack', id: 9 })
  t.match(await agent.next({ type: 'chat' }), { room: 'support:cust', text: 'help' })
  t.match(await customer.request({ type: 'message', room: 'support:other', text: 'x' }, 10), { type: 'error', code: 'not_in_room', id: 10 }, 'a room not joined is not_in_room, as before')
})

t.test('grants are checked before authorizePublish, which is not asked when they refuse', async (t) => {
  const asked: string[] = []
  const s = await serve(t, {
    authenticate: byTable({ reader: { user: { id: 'reader' }, grants: { r: ['join'], w: ['join', 'publish'] } } }),
    authorizePublish: (_user, room) => { asked.push(room); return false }
  })
  const reader = await s.open({ headers: { authorization: 'Bearer reader' } })
  await join(reader, 'r')
  await join(reader, 'w')
  t.match(await reader.request({ type: 'message', room: 'r', text: 'x' }, 1), { code: 'forbidden', id: 1 })
  t.same(asked, [], 'grants refused first')
  t.match(await reader.request({ type: 'message', room: 'w', text: 'x' }, 2), { code: 'forbidden', id: 2 })
  t.same(asked, ['w'], 'then authorizePublish')
})

t.test('server-side joins are not checked against grants', async (t) => {
  const s = await serve(t, { authenticate: byTable({ g: { user: { id: 'g' }, grants: { mine: ['join'] } } }) })
  const g = await s.open({ headers: { authorization: 'Bearer g' } })
  await s.app.rooms.join(g.welcome.connectionId, 'elsewhere')
  t.match(await g.next({ type: 'system', event: 'added' }), { room: 'elsewhere' })
  await s.app.rooms.joinUser('g', 'other')
  t.match(await g.next({ type: 'system', event: 'added' }), { room: 'other' })
  t.same(await g.request({ type: 'join', room: 'elsewhere' }, 1), { type: 'ack', id: 1 }, 'a join of a room it is in is the usual no-op ack')
  t.match(await g.request({ type: 'message', room: 'elsewhere', text: 'x' }, 2), { code: 'forbidden', id: 2 }, 'but no publish grant')
})

t.test('bad grants refuse the upgrade (403) with a log line saying why', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {
    authenticate: byTable({
      notObject: { user: { id: 'a' }, grants: ['join'] as any },
      badOp: { user: { id: 'b' }, grants: { r: ['join', 'write'] } as any },
      notArray: { user: { id: 'c' }, grants: { r: 'join' } as any },
      ok: { user: { id: 'd' }, grants: {} }
    })
  }, undefined, { logger: { level: 'error', stream: logs.stream } })
  for (const token of ['notObject', 'badOp', 'notArray']) {
    const refused = await refusedUpgrade(`${s.url}?token=${token}`)
    t.equal(refused.status, 403, token)
  }
  const messages = logs.records().map((r) => r.msg).join('\n')
  t.match(messages, /invalid grants \(grants must be an object/)
  t.match(messages, /invalid grants \(grants\["r"\] holds "write"/)
  t.match(messages, /invalid grants \(grants\["r"\] must be an array/)
  const none = await s.open({ headers: { authorization: 'Bearer ok' } })
  t.match(await none.request({ type: 'join', room: 'r' }, 1), { code: 'forbidden', id: 1 }, 'empty grants: nothing may be joined')
})
