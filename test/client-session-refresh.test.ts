// The client renews its session on the live connection ahead of expiresAt: no 4001, no reconnect,
// the same connection id, and the other members see no leave or join. When the server refuses the
// refresh, the server's 4001 at expiry and the reconnect at once follow, as without refresh.
import t from 'tap'
import { fastReconnect, listen, openClient } from './client-helpers.js'
import { connect as rawConnect, join, roundTrip } from './helpers.js'

t.test('the client refreshes ahead of expiry: no close, no reconnect, nothing seen by the others', async (t) => {
  const issued: string[] = []
  const server = await listen({
    // "ann.N" tokens are good for 1.2 s; each refresh extends the session by as much again.
    authenticate: (token) => token.startsWith('ann.') ? { user: { id: 'ann' }, expiresAt: Date.now() + 1200 } : token === 'ben' ? { id: 'ben' } : null,
    presenceEvents: 'each'
  })
  t.teardown(() => server.app.close())
  const ben = await rawConnect(`${server.url}?token=ben`)
  t.teardown(() => ben.ws.terminate())
  await join(ben, 'r')
  let n = 0
  const { client, events } = openClient(t, server.url, {
    token: () => { const token = `ann.${++n}`; issued.push(token); return token },
    reconnect: fastReconnect,
    refresh: { marginMs: 300, jitterMs: 200 },
    presence: false
  })
  events.log.length = 0
  await client.join('r')
  await ben.next((m) => m.event === 'join' && m.user.id === 'ann')
  const connectionId = client.connectionId
  const sessions: any[] = []
  client.on('session', (info) => sessions.push(info))
  // Three token lifetimes: the first token would have expired twice over.
  await new Promise((resolve) => setTimeout(resolve, 3000))
  t.ok(sessions.length >= 2, `refreshed ${sessions.length} times`)
  t.ok(sessions.every((s) => typeof s.expiresAt === 'number'))
  t.same(events.events('close'), [], 'never closed')
  t.same(events.events('reconnecting'), [])
  t.equal(client.connectionId, connectionId, 'the same connection')
  t.ok(issued.length >= 3, 'the token function was called for each refresh')
  await client.send('r', 'after')
  t.match(await ben.next({ type: 'chat' }), { text: 'after', user: { id: 'ann' } })
  await roundTrip(ben)
  t.same(ben.pending().filter((m) => m.type === 'system' && m.user?.id === 'ann'), [], 'ben saw no leave or join of ann after her join')
})

t.test('a refused refresh falls back to the server\'s 4001 and a reconnect at once', async (t) => {
  const server = await listen({
    authenticate: (token) => {
      if (token === 'short') return { user: { id: 'ann' }, expiresAt: Date.now() + 800 }
      if (token === 'long') return { user: { id: 'ann' }, expiresAt: Date.now() + 60_000 }
      return null
    }
  })
  t.teardown(() => server.app.close())
  // First connection: short; its refresh: refused; the reconnect: long.
  const tokens = ['short', 'refused', 'long']
  const { client, events } = openClient(t, server.url, {
    token: () => tokens.shift() ?? 'long',
    refresh: { marginMs: 300, jitterMs: 0 },
    presence: false
  })
  await client.join('r')
  const [error] = await events.next('error')
  t.equal(error.code, 'forbidden', 'the refusal is reported')
  const [closed] = await events.next('close')
  t.match(closed, { code: 4001, reason: 'Token expired', willReconnect: true })
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, ['r'], 'rooms rejoined after the reconnect')
  t.same(events.events('session'), [])
})

t.test('refresh: false, or a string token: no refresh, the 4001 reconnect as before', async (t) => {
  let calls = 0
  const server = await listen({
    authenticate: (token) => { calls++; return token === 'x' ? { user: { id: 'ann' }, expiresAt: Date.now() + (calls === 1 ? 400 : 60_000) } : null }
  })
  t.teardown(() => server.app.close())
  const { events } = openClient(t, server.url, { token: () => 'x', refresh: false, presence: false })
  const [closed] = await events.next('close')
  t.equal(closed.code, 4001)
  await events.next('open', (info) => info.reconnected)
  t.equal(calls, 2, 'authenticate ran for the two upgrades only')
})

t.test('bad refresh options throw', async (t) => {
  const { connect } = await import('../lib/client/index.js')
  const { default: WebSocket } = await import('ws')
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, refresh: { marginMs: -1 } }), /refresh.marginMs must be a number >= 0/)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, refresh: 'soon' as any }), /refresh must be an object or false/)
})
