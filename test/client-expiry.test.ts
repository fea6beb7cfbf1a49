// §11 from the client's side: a session that expires (close 4001) comes back at once, without the
// backoff, with a fresh token from the token function, and rejoins its rooms; disconnectUser's
// 4000 (and its other 4xxx codes) is final.
import t from 'tap'
import WebSocket from 'ws'
import { connect as connectClient, shouldReconnect } from '../lib/client/index.js'
import { listen, Recorder } from './client-helpers.js'

t.test('4001 Token expired: reconnect at once with a fresh token, rooms rejoined', async (t) => {
  const issued: string[] = []
  // Token n is good for 300 ms × n⁴: the first expires soon, the second outlives the test.
  const server = await listen({
    authenticate: (token) => ({ user: { id: 'alice' }, expiresAt: Date.now() + 300 * Number(token.slice(1)) ** 4 })
  })
  t.teardown(() => server.app.close())
  // The default reconnect policy: a backoff would wait 250–500 ms for the first retry. Refresh in
  // place is off: this is the path a failed or late refresh falls back to (client-session-refresh).
  const client = connectClient(server.url, {
    WebSocket,
    refresh: false,
    token: () => { issued.push(`t${issued.length + 1}`); return issued[issued.length - 1] }
  })
  const events = new Recorder(client)
  t.teardown(() => client.close())
  await client.join('r')
  const first = client.connectionId

  const [closed] = await events.next('close')
  t.same(closed, { code: 4001, reason: 'Token expired', willReconnect: true }, 'expired: will reconnect')
  const [reconnecting] = await events.next('reconnecting')
  t.same(reconnecting, { attempt: 1, delayMs: 0 }, 'no backoff')
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, ['r'], 'the room is rejoined')
  t.not(client.connectionId, first)
  t.same(issued, ['t1', 't2'], 'the token function was asked again')
  t.same(server.upgrades.map((u) => u.protocol), ['rooms.v1,bearer.t1', 'rooms.v1,bearer.t2'], 'the second upgrade carried the fresh token')
  t.same(server.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  t.same(events.events('error'), [], 'an expiry is no error')
})

t.test('disconnectUser: 4000 (and other 4xxx codes) are final', async (t) => {
  for (const code of [undefined, 4003]) {
    await t.test(`code ${code ?? 'default (4000)'}`, async (t) => {
      const server = await listen({ authenticate: (token) => ({ id: token }) })
      t.teardown(() => server.app.close())
      const client = connectClient(server.url, { WebSocket, token: 'bob', reconnect: { initialDelayMs: 5 } })
      const events = new Recorder(client)
      t.teardown(() => client.close())
      await client.join('r')
      await server.app.rooms.disconnectUser('bob', code === undefined ? undefined : { code })
      const [closed] = await events.next('close')
      t.equal(closed.code, code ?? 4000)
      t.equal(closed.willReconnect, false)
      t.equal(closed.error.code, 'connection_refused')
      t.equal(client.state, 'closed')
      // A fresh client gets in, so a reconnect of the old one would have come before it.
      const other = connectClient(server.url, { WebSocket, token: 'carol' })
      await other.join('r')
      await other.close()
      t.same(server.upgrades.map((u) => u.protocol), ['rooms.v1,bearer.bob', 'rooms.v1,bearer.carol'], 'bob did not come back')
    })
  }
})

t.test('shouldReconnect: 4001 yes, the rest of 4000–4999 no', async (t) => {
  t.equal(shouldReconnect(4001), true)
  for (const code of [4000, 4002, 4003, 4999]) t.equal(shouldReconnect(code), false, String(code))
})
