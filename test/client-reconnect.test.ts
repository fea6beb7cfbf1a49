// Reconnect, rejoin and the offline queue against real servers: a restart on the same port, cut
// TCP connections, server-side closes with each kind of code, and calls made while disconnected.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { RoomsClientError } from '../lib/client/index.js'
import { listen, listenRestartable, openClient, rejection, type Server } from './client-helpers.js'
import { reservedPort } from './helpers.js'

/** Server side of the tests: `kick` closes the caller with a code, `note` records what it got. */
function setup (notes: unknown[]) {
  return (app: FastifyInstance): void => {
    app.rooms.handle('kick', Type.Object({ code: Type.Integer(), reason: Type.Optional(Type.String()) }), (conn, msg) => {
      conn.close(msg.code, msg.reason ?? '')
    })
    app.rooms.handle('note', Type.Object({ n: Type.Number() }), (_conn, msg) => {
      notes.push(msg.n)
      return msg.n
    })
    app.rooms.handle('hang', Type.Object({}), () => new Promise(() => {}))
  }
}

t.test('a server restart on the same port: reconnect, rejoin, messages flow again, queued calls sent once', async (t) => {
  const notes: unknown[] = []
  let server: Server = await listenRestartable({}, setup(notes))
  t.teardown(() => server.app.close())
  const { client: a, events: ea } = openClient(t, server.url, { maxQueuedFrames: 2 })
  const { client: b, events: eb } = openClient(t, server.url)
  await Promise.all([a.join('r1'), a.join('r2'), b.join('r1')])
  const firstConnection = a.connectionId

  await server.app.close()
  const [closed] = await ea.next('close')
  t.same(closed, { code: 1001, reason: closed.reason, willReconnect: true }, 'going away (1001): will reconnect')
  t.equal(a.state, 'reconnecting')
  await eb.next('close')
  t.equal(a.connectionId, undefined, 'no connection id while disconnected')
  t.same([...a.rooms].sort(), ['r1', 'r2'], 'rooms are remembered')
  // Nothing listens now: attempts fail with ECONNREFUSED and are retried.
  t.match((await ea.next('reconnecting'))[0], { attempt: 1, delayMs: Number })
  await ea.next('close', (info) => info.code === 1006 && info.willReconnect === true)

  // Calls made while disconnected wait (bounded) and go out once after the reconnect.
  const queued1 = a.request('note', { n: 1 })
  const expired = a.request('note', { n: 2 }, { timeoutMs: 1 })
  t.equal((await rejection(expired)).code, 'timeout', 'a queued call can time out')
  const queued2 = a.send('r1', 'sent while offline')
  const overflow = await rejection(a.request('note', { n: 3 }))
  t.equal(overflow.code, 'queue_full', 'the third queued call is refused at once (maxQueuedFrames: 2)')

  server = await listen({}, setup(notes), server.port)
  const [reopened] = await ea.next('open', (info) => info.reconnected)
  t.equal(reopened.reconnected, true)
  t.same(reopened.rooms.sort(), ['r1', 'r2'], 'every joined room is rejoined')
  t.not(a.connectionId, firstConnection, 'a new connection')
  t.equal(await queued1, 1)
  t.equal(await queued2, undefined, 'the queued message went out after the rejoin (else not_in_room)')
  t.same(notes, [1], 'the queued call ran once; the timed-out and refused ones never ran')
  t.equal(await a.request('note', { n: 4 }), 4)
  t.same(notes, [1, 4], 'nothing was sent twice')

  t.same((await eb.next('open', (info) => info.reconnected))[0].rooms, ['r1'], 'b is back in its room too')
  await b.send('r1', 'back online')
  t.same((await ea.next('chat'))[0], { type: 'chat', room: 'r1', user: b.user, text: 'back online' })
  await a.send('r1', 'hello again')
  t.same((await eb.next('chat', (c) => c.text === 'hello again'))[0], { type: 'chat', room: 'r1', user: a.user, text: 'hello again' })
  t.same(server.app.rooms.rooms().sort((x, y) => x.room.localeCompare(y.room)), [{ room: 'r1', size: 2 }, { room: 'r2', size: 1 }],
    'the new server has both clients in their rooms')
  t.same(ea.events('state').map((s) => s[0]), ['open', 'reconnecting', 'open'])
})

t.test('a dropped connection (1006) rejects the calls in flight and reconnects', async (t) => {
  const server = await listen({}, setup([]))
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url)
  await client.join('room')
  const inFlight = client.request('hang', {}, { timeoutMs: 0 })
  // The handler never answers; cut every TCP connection under the server's feet.
  while (server.app.rooms.stats().messagesIn < 2) await new Promise((resolve) => setImmediate(resolve))
  for (const socket of server.sockets) socket.destroy()
  const err = await rejection(inFlight)
  t.equal(err.code, 'disconnected', 'a call in flight is rejected, not resent')
  t.equal((await events.next('close'))[0].code, 1006)
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, ['room'])
  t.equal(client.state, 'open')
})

t.test('close codes decide: 1011 and 1013 reconnect; 1008, 1000 and 4xxx do not', async (t) => {
  for (const code of [1011, 1013, 1009]) {
    await t.test(`code ${code} reconnects`, async (t) => {
      const server = await listen({}, setup([]))
      t.teardown(() => server.app.close())
      const { client, events } = openClient(t, server.url)
      await client.join('r')
      let stateAtClose
      client.once('close', () => { stateAtClose = client.state })
      t.equal((await rejection(client.request('kick', { code }))).code, 'disconnected')
      t.equal(stateAtClose, 'reconnecting', 'a close listener already sees the new state')
      t.match((await events.next('close'))[0], { code, willReconnect: true })
      t.same((await events.next('open', (info) => info.reconnected))[0].rooms, ['r'])
    })
  }
  for (const code of [1008, 1000, 4000, 3001]) {
    await t.test(`code ${code} is final`, async (t) => {
      const server = await listen({}, setup([]))
      t.teardown(() => server.app.close())
      const { client, events } = openClient(t, server.url)
      await client.join('r')
      let connects = 0
      server.app.rooms.on('connect', () => { connects++ })
      let stateAtClose
      client.once('close', () => { stateAtClose = client.state })
      const kicked = client.request('kick', { code, reason: 'bye' })
      const [info] = await events.next('close')
      t.equal(stateAtClose, 'closed', 'a close listener already sees the final state')
      t.equal(info.code, code)
      t.equal(info.reason, 'bye')
      t.equal(info.willReconnect, false)
      t.ok(info.error instanceof RoomsClientError)
      t.equal(info.error.code, 'connection_refused')
      t.match(info.error.message, new RegExp(`code ${code} \\(bye\\)`))
      t.equal(client.state, 'closed')
      t.equal((await rejection(kicked)).code, 'disconnected')
      t.equal((await events.next('error'))[0], info.error, 'the reason is also an error event')
      t.equal((await rejection(client.join('again'))).code, 'closed', 'later calls reject at once')
      t.equal(await rejection(client.ready()), info.error, 'ready() rejects with the reason it closed')
      // A fresh client gets in and out again, so a reconnect of the old one would have been seen.
      const { client: other } = openClient(t, server.url)
      await other.ready()
      await other.close()
      t.equal(connects, 1, 'only the fresh client connected')
    })
  }
})

t.test('close() rejects what is pending or queued, resolves when the socket is closed, never reconnects', async (t) => {
  const server = await listen({}, setup([]))
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url)
  const queued = client.join('early') // called before the connection is open: queued
  t.equal(client.state, 'connecting')
  t.equal(await queued, undefined, 'a call made while connecting goes out once open')
  const inFlight = rejection(client.request('hang', {}, { timeoutMs: 0 }))
  await client.close()
  t.equal(client.state, 'closed')
  t.equal((await inFlight).code, 'closed')
  t.match((await events.next('close'))[0], { code: 1000, willReconnect: false })
  t.same(events.events('error'), [], 'a deliberate close is not an error')
  t.same(events.events('state').map((s) => s[0]), ['open', 'closed'])
  await client.close() // idempotent
  t.equal((await rejection(client.send('early', 'x'))).code, 'closed')

  // A close code a WebSocket refuses: the socket is closed anyway, and the mistake reported.
  const { client: wrong } = openClient(t, server.url)
  await wrong.ready()
  t.match(await rejection(wrong.close(1005)), { name: 'TypeError' }, 'close(1005) rejects with the socket\'s error')
  t.equal(wrong.state, 'closed')

  // While reconnecting: the retry timer is cancelled and queued calls reject.
  const port = await reservedPort()
  const { client: down, events: downEvents } = openClient(t, `ws://127.0.0.1:${port}/ws`)
  const pending = rejection(down.join('x'))
  await downEvents.next('reconnecting')
  await down.close()
  t.equal((await pending).code, 'closed', 'queued calls reject with closed')
  t.equal(down.state, 'closed')
})

t.test('maxAttempts bounds the retries; reconnect: false makes any loss final', async (t) => {
  const port = await reservedPort()
  const { client, events } = openClient(t, `ws://127.0.0.1:${port}/ws`, { reconnect: { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 } })
  const queued = client.join('x')
  const [final] = await events.next('close', (info) => !info.willReconnect)
  t.equal(final.error.code, 'reconnect_failed')
  t.same(events.events('reconnecting').map((r) => r[0].attempt), [1, 2, 3], 'three retries after the first failure')
  t.equal(events.events('close').length, 4)
  t.equal(client.state, 'closed')
  t.equal((await rejection(queued)).code, 'closed')
  t.equal(await rejection(client.ready()), final.error, 'ready() rejects with the reason it closed')

  const server = await listen({}, setup([]))
  t.teardown(() => server.app.close())
  const { client: once, events: onceEvents } = openClient(t, server.url, { reconnect: false })
  await once.join('r')
  await rejection(once.request('kick', { code: 1011 }))
  t.match((await onceEvents.next('close'))[0], { code: 1011, willReconnect: false })
  t.equal(once.state, 'closed')
  t.same(onceEvents.events('reconnecting'), [])
})

t.test('a rejoin the server now refuses is dropped and reported', async (t) => {
  let allowed = true
  const server = await listen({ authorizeJoin: () => allowed }, setup([]))
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url)
  await client.join('a')
  await client.join('b')
  allowed = false
  await rejection(client.request('kick', { code: 1011 }))
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, [], 'no room rejoined')
  const errors = events.events('error').map((e) => e[0])
  t.same(errors.map((e) => [e.code, e.room]).sort(), [['forbidden', 'a'], ['forbidden', 'b']])
  t.same([...client.rooms], [], 'refused rooms are forgotten')
})

t.test('leaving while a join is in flight: the late join ack does not bring the room back', async (t) => {
  const server = await listen({}, setup([]))
  t.teardown(() => server.app.close())
  const { client } = openClient(t, server.url)
  await client.ready()
  const joined = client.join('r')
  const left = client.leave('r')
  await Promise.all([joined, left])
  t.same([...client.rooms], [], 'the last call wins')
})
