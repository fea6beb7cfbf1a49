// The client against a real server: calls settle with their own ack or error, events arrive
// typed by name, timeouts reject, and a late answer after a timeout changes nothing.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import { connect, RoomsClientError, PROTOCOL, RoomsClient } from '../lib/client/index.js'
import * as clientModule from '../lib/client/index.js'
import type * as clientTypes from '../types/client.js'
import { listen, openClient, rejection } from './client-helpers.js'

// The runtime exports are what the public declaration file says they are.
const exportsMatchDeclarations: typeof clientTypes = clientModule
t.equal(exportsMatchDeclarations.connect, connect)

t.test('join, send and leave resolve on their acks; chat and system events reach the other member', async (t) => {
  const server = await listen()
  t.teardown(() => server.app.close())
  const { client: a, events: ea } = openClient(t, server.url)
  const { client: b, events: eb } = openClient(t, server.url)
  await Promise.all([a.ready(), b.ready()])
  t.equal(a.state, 'open')
  t.type(a.connectionId, 'string')
  t.match(a.user, { id: /^anon-/ })
  const [opened] = await ea.next('open')
  t.same(opened, { connectionId: a.connectionId, user: a.user, reconnected: false, rooms: [], pending: [] })
  t.same(ea.events('state').map((s) => s[0]), ['open'], 'connecting → open')

  t.equal(await a.join('lobby'), undefined, 'join resolves with nothing')
  t.same([...a.rooms], ['lobby'])
  await b.join('lobby')
  t.same(await ea.first('system', (e) => e.event === 'join' && e.user.id === b.user!.id), {
    type: 'system', event: 'join', room: 'lobby', user: b.user, text: 'User joined room'
  })

  t.equal(await a.send('lobby', 'hello'), undefined, 'send resolves on the ack')
  t.same(await eb.first('chat'), { type: 'chat', room: 'lobby', user: a.user, text: 'hello' })
  t.same(ea.events('chat'), [], 'the sender does not get its own chat')

  await a.leave('lobby')
  t.same([...a.rooms], [], 'left rooms are forgotten')
  t.same(await eb.first('system', (e) => e.event === 'leave'), {
    type: 'system', event: 'leave', room: 'lobby', user: a.user, text: 'User left room'
  })
})

t.test('each refusal rejects its own call with the server code; the others still resolve', async (t) => {
  const server = await listen({ authorizeJoin: (_user, room) => room !== 'secret' })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url)
  await client.ready()

  const [forbidden, ok, invalid, notIn] = await Promise.allSettled([
    client.join('secret'),
    client.join('open'),
    client.join('bad\u0001room'),
    client.send('elsewhere', 'hi')
  ])
  t.equal(ok.status, 'fulfilled', 'the allowed join resolves')
  const check = (result: PromiseSettledResult<unknown>, code: string): void => {
    t.equal(result.status, 'rejected', `${code} rejects`)
    const err = (result as PromiseRejectedResult).reason
    t.ok(err instanceof RoomsClientError, 'a RoomsClientError')
    t.equal(err.name, 'RoomsClientError')
    t.equal(err.code, code)
    t.equal(err.frame?.type, 'error')
    t.equal(err.frame?.code, code)
    t.type(err.message, 'string')
  }
  check(forbidden, 'forbidden')
  check(invalid, 'invalid_room')
  check(notIn, 'not_in_room')
  t.same([...client.rooms], ['open'], 'refused joins are not remembered')
  t.same(events.events('error'), [], 'answered refusals are not emitted as error events')

  t.equal((await rejection(client.leave('never'))).code, 'not_in_room')
  t.equal((await rejection(client.request('no-such-type', {}))).code, 'invalid_message')
})

t.test('request() settles with the ack data of its own id', async (t) => {
  const server = await listen({}, (app) => {
    app.rooms.handle('echo', Type.Object({ value: Type.Unknown() }), (_conn, msg) => ({ echoed: msg.value }))
    app.rooms.handle('nothing', Type.Object({}), () => undefined)
    app.rooms.handle('boom', Type.Object({}), () => { throw new Error('handler failed') })
  })
  t.teardown(() => server.app.close())
  const { client } = openClient(t, server.url)

  t.same(await client.request('echo', { value: [1, 'two'] }), { echoed: [1, 'two'] })
  t.equal(await client.request('nothing'), undefined, 'no data: resolves with undefined')
  t.same(await client.request('echo', { value: 1, type: 'boom', id: 'x' }), { echoed: 1 }, 'payload cannot override type or id')
  const boom = await rejection(client.request('boom', {}))
  t.equal(boom.code, 'internal_error')
  t.notMatch(boom.message, /handler failed/, 'no server internals leak')

  const values = ['a', 'b', 'c', 'd']
  t.same(await Promise.all(values.map((value) => client.request('echo', { value }))), values.map((v) => ({ echoed: v })),
    'concurrent calls each get their own data')
})

t.test('a call without an answer rejects with timeout; the late answer is ignored', async (t) => {
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  const server = await listen({}, (app) => {
    app.rooms.handle('hold', Type.Object({}), async () => { await held; return 'late' })
  })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url, { requestTimeoutMs: 40 })
  await client.ready()

  const err = await rejection(client.request('hold'))
  t.equal(err.code, 'timeout')
  t.match(err.message, /hold/)
  release()
  // The late ack arrives before the answer to the next call on the same connection.
  t.same(await client.request('hold', {}, { timeoutMs: 5000 }), 'late', 'a per-call timeout overrides the default')
  t.same(events.events('error'), [], 'the late ack is dropped silently')
  t.equal(client.state, 'open')
})

t.test('server frames: unsolicited errors, application types by name, reserved names only as message', async (t) => {
  const server = await listen({}, (app) => {
    app.rooms.handle('poke', Type.Object({}), (conn) => {
      conn.send({ type: 'error', code: 'rate_limited', text: 'slow down' })
      conn.send({ type: 'typing', room: 'r', user: conn.user })
      conn.send({ type: 'open', bogus: true })
      conn.send({ type: 'ack', id: 999999 })
      return 'poked'
    })
  })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url)
  const messages: any[] = []
  client.on('message', (frame) => messages.push(frame))
  await client.ready()

  t.equal(await client.request('poke'), 'poked')
  const err = (await events.next('error'))[0]
  t.ok(err instanceof RoomsClientError)
  t.equal(err.code, 'rate_limited')
  t.equal(err.message, 'slow down')
  t.same((await events.next('typing'))[0], { type: 'typing', room: 'r', user: client.user })
  t.same(events.events('open').length, 1, 'a server frame named "open" is not an open event')
  t.ok(messages.some((m) => m.type === 'open' && m.bogus === true), 'but it reaches "message"')
})

t.test('listeners: once, off, the unsubscribe function, and a throwing listener', async (t) => {
  const server = await listen()
  t.teardown(() => server.app.close())
  const { client } = openClient(t, server.url)
  const seen: string[] = []
  const off = client.on('system', (e) => seen.push('on:' + e.event))
  client.once('system', (e) => seen.push('once:' + e.event))
  const listener = (e: any): void => { seen.push('off:' + e.event) }
  client.on('system', listener)
  client.off('system', listener)
  const thrown: unknown[] = []
  const onUncaught = (err: unknown): void => { thrown.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => { process.off('uncaughtException', onUncaught) })
  client.on('open', () => { throw new Error('listener bug') })
  await client.ready()
  await client.join('x')
  off()
  await client.join('y')
  t.same(seen, ['on:welcome', 'once:welcome', 'on:join'])
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(thrown.length, 1, 'a throwing listener is reported, not swallowed')
  t.equal(client.state, 'open', 'and does not break the client')
  t.same([...client.rooms].sort(), ['x', 'y'])
})

t.test('the token travels as a subprotocol by default, or in the query', async (t) => {
  const tokens: string[] = []
  const server = await listen({
    authenticate: (token) => { tokens.push(token); return { id: 'user-' + token, name: 'Ada' } }
  })
  t.teardown(() => server.app.close())

  const { client } = openClient(t, server.url, { token: 'abc.DEF-123_~' })
  await client.ready()
  t.same(client.user, { id: 'user-abc.DEF-123_~', name: 'Ada' })
  t.equal(server.upgrades[0].url, '/ws', 'not in the URL')
  t.same(server.upgrades[0].protocol?.split(/, */), [PROTOCOL, 'bearer.abc.DEF-123_~'], 'but in a subprotocol')
  t.equal(server.upgrades[0].authorization, undefined)

  const { client: q } = openClient(t, server.url, { token: 'q t/=', tokenTransport: 'query', protocols: ['extra.v1'] })
  await q.ready()
  t.equal(q.user!.id, 'user-q t/=')
  t.equal(server.upgrades[1].url, '/ws?token=q+t%2F%3D')
  t.same(server.upgrades[1].protocol?.split(/, */), [PROTOCOL, 'extra.v1'], 'rooms.v1 first, then the extra protocols')
  t.same(tokens, ['abc.DEF-123_~', 'q t/='])
  t.equal(q.url, server.url, 'the url property never carries the token')
})

t.test('bad arguments fail at once with clear errors', async (t) => {
  const hasGlobal = 'WebSocket' in globalThis
  if (!hasGlobal) t.throws(() => connect('ws://127.0.0.1:1/ws'), /WebSocket option/, 'Node 20 has no global WebSocket: say so')
  t.throws(() => connect('ftp://127.0.0.1/ws', { WebSocket }), /unsupported URL scheme/)
  t.throws(() => connect('not a url', { WebSocket }), TypeError)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, token: 'a b' }), /tokenTransport: 'query'/)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, reconnect: { factor: 0.5 } }), /reconnect\.factor/)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, reconnect: { jitter: 2 } }), /reconnect\.jitter/)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, reconnect: { initialDelayMs: -1 } }), /reconnect\.initialDelayMs/)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, requestTimeoutMs: -5 }), /requestTimeoutMs/)
  t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, protocols: 'x' as any }), /protocols/)

  const server = await listen()
  t.teardown(() => server.app.close())
  const client = new RoomsClient(server.url.replace('ws:', 'http:'), { WebSocket })
  t.teardown(() => client.close())
  t.equal(client.url, server.url, 'http: URLs map to ws:')
  await client.ready()
  t.type(await rejection(client.request('', {})), TypeError)
  t.type(await rejection(client.request('x', [] as any)), TypeError)
  const circular: any = {}
  circular.self = circular
  t.type(await rejection(client.request('x', circular)), TypeError, 'an unserializable payload rejects, nothing is sent')
  t.equal(client.state, 'open')
})
