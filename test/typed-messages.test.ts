// Typed messages through real sockets: `defineMessages` refuses what the wire owns, `implement`
// registers every request type (and refuses a missing handler), a handler's result is checked
// before the ack, the typed senders send `{ type, ...payload }`, and the client drops an event
// frame that fails its schema (`invalid_event`).
import t from 'tap'
import { Type } from '@sinclair/typebox'
import { Type as TypeNext } from 'typebox'
import WebSocket from 'ws'
import { connect as connectClient, defineMessages as clientDefineMessages, type RoomsClientError } from '../lib/client/index.js'
import { defineMessages } from '../lib/index.js'
import { captureLogs, connect, join, startServer } from './helpers.js'
import { messages } from './fixtures/typed-messages.js'

const obj = Type.Object({ room: Type.String() })

t.test('defineMessages refuses names the protocol uses, naming the entry', async (t) => {
  t.equal(clientDefineMessages, defineMessages, 'the server and the client export the same function')
  for (const name of ['join', 'leave', 'message', 'members', 'refresh', 'ack', 'error', 'system', 'chat']) {
    t.throws(() => defineMessages({ requests: { [name]: { payload: obj } } }), { name: 'TypeError', message: new RegExp(`requests\\.${name}: "${name}" is a type the protocol uses`) })
    t.throws(() => defineMessages({ events: { [name]: obj } }), { name: 'TypeError', message: new RegExp(`events\\.${name}:`) })
  }
})

t.test('defineMessages refuses a payload that is not an object schema, and fields the envelope owns', async (t) => {
  t.throws(() => defineMessages({ requests: { post: { payload: Type.String() as any } } }), { name: 'TypeError', message: /requests\.post\.payload: the payload must be a TypeBox object schema/ })
  t.throws(() => defineMessages({ events: { posted: TypeNext.Array(TypeNext.String()) as any } }), { name: 'TypeError', message: /events\.posted: the payload must be a TypeBox object schema/ })
  t.throws(() => defineMessages({ requests: { post: { payload: Type.Object({ type: Type.String() }) } } }), { name: 'TypeError', message: /requests\.post\.payload: declares "type"/ })
  t.throws(() => defineMessages({ requests: { post: { payload: TypeNext.Object({ id: TypeNext.String() }) } } }), { name: 'TypeError', message: /requests\.post\.payload: declares "id"/ })
  t.throws(() => defineMessages({ events: { posted: Type.Object({ type: Type.String() }) } }), { name: 'TypeError', message: /events\.posted: declares "type"/ })
  t.equal(defineMessages(messages), messages, 'returns the definition itself')
})

t.test('implement refuses a definition with a missing handler, registering nothing', async (t) => {
  const server = await startServer({}, (app) => {
    t.throws(() => app.rooms.implement(messages, { post: () => ({ id: 1 }), count: () => ({ size: 0 }) } as any),
      { name: 'TypeError', message: /no handler for the request type "typing"/ })
    // Nothing half registered: the same definition can still be implemented in full.
    app.rooms.implement(messages, { post: () => ({ id: 1 }), count: () => ({ size: 0 }), typing: () => {} })
  })
  t.teardown(() => server.app.close())
  const client = await connect(server.url)
  t.teardown(() => client.close())
  t.same(await client.request({ type: 'post', room: 'r', text: 'x' }, 1), { type: 'ack', id: 1, data: { id: 1 } })
})

t.test('results are checked before the ack; a wrong one is internal_error and a log line naming the type', async (t) => {
  const logs = captureLogs()
  let wrong = false
  const server = await startServer({}, (app) => {
    app.rooms.implement(messages, {
      post: async (_conn, msg) => (wrong ? { id: 'not a number' } as any : { id: msg.text.length }),
      count: (_conn, msg) => (wrong ? { size: -1 } : { size: msg.room.length }),
      typing: () => ({ leaked: true }) as any
    })
  }, { logger: { level: 'error', stream: logs.stream } })
  t.teardown(() => server.app.close())
  const client = await connect(server.url)
  t.teardown(() => client.close())

  t.same(await client.request({ type: 'post', room: 'r', text: 'hello' }, 1), { type: 'ack', id: 1, data: { id: 5 } })
  t.same(await client.request({ type: 'count', room: 'abc' }, 2), { type: 'ack', id: 2, data: { size: 3 } }, 'typebox 1.x result')
  const typing = await client.request({ type: 'typing', room: 'r' }, 3)
  t.same(typing, { type: 'ack', id: 3 }, 'a request without a result is acked without data, whatever its handler returned')
  const invalid = await client.request({ type: 'post', room: 'r' }, 4)
  t.match(invalid, { type: 'error', code: 'invalid_message', id: 4, text: /text/ }, 'payloads are validated as handle does')

  wrong = true
  t.match(await client.request({ type: 'post', room: 'r', text: 'x' }, 5), { type: 'error', code: 'internal_error', id: 5 })
  t.match(await client.request({ type: 'count', room: 'r' }, 6), { type: 'error', code: 'internal_error', id: 6 })
  const lines = logs.records().filter((r) => r.type !== undefined)
  t.match(lines[0], { type: 'post', err: { message: /the result of "post" fails its schema: \/id / } })
  t.match(lines[1], { type: 'count', err: { message: /the result of "count" fails its schema: \/size / } })
})

t.test('the typed senders send { type, ...payload } through broadcast, sendToUser and broadcastAll', async (t) => {
  let api: any
  const server = await startServer({ history: { rooms: (room) => room.startsWith('h:') } }, (app) => {
    api = app.rooms.implement(messages, { post: () => ({ id: 1 }), count: () => ({ size: 0 }), typing: () => {} })
  })
  t.teardown(() => server.app.close())
  const a = await connect(server.url)
  const b = await connect(server.url)
  t.teardown(() => { a.close(); b.close() })
  await join(a, 'lobby')
  await join(b, 'lobby')
  await api.broadcast('lobby', 'posted', { room: 'lobby', id: 7, text: 'hi' }, { except: a.welcome.connectionId })
  t.same(await b.next({ type: 'posted' }), { type: 'posted', room: 'lobby', id: 7, text: 'hi' })
  await api.sendToUser(a.welcome.user.id, 'typed', { room: 'lobby', user: 'u' })
  t.same(await a.next({ type: 'typed' }), { type: 'typed', room: 'lobby', user: 'u' })
  await api.broadcastAll('typed', { room: '*', user: 'all' })
  t.same(await b.next({ type: 'typed' }), { type: 'typed', room: '*', user: 'all' })
  t.same(a.received.filter((m) => m.type === 'posted'), [], 'except holds')

  await join(b, 'h:1')
  await api.broadcast('h:1', 'posted', { room: 'h:1', id: 8, text: 'kept' })
  t.match(await b.next({ type: 'posted', room: 'h:1' }), { type: 'posted', room: 'h:1', id: 8, text: 'kept', offset: Number }, 'a history room gives it an offset')
  t.match((await server.app.rooms.history('h:1')).messages, [{ type: 'posted', id: 8 }])
})

t.test('the client types requests and events by the definition and drops an event failing its schema', async (t) => {
  let api: any
  const server = await startServer({}, (app) => {
    api = app.rooms.implement(messages, { post: (_conn, msg) => ({ id: msg.text.length }), count: () => ({ size: 2 }), typing: () => {} })
  })
  t.teardown(() => server.app.close())
  const client = connectClient(server.url, { WebSocket, messages, reconnect: false })
  t.teardown(() => client.close())
  await client.ready()
  await client.join('lobby')
  t.same(await client.request('post', { room: 'lobby', text: 'four' }), { id: 4 })
  t.equal(await client.request('typing', { room: 'lobby' }), undefined)

  const got: unknown[] = []
  const errors: RoomsClientError[] = []
  client.on('posted', (frame) => { got.push(frame) })
  client.on('error', (err) => { errors.push(err) })
  // Sent around the typed sender, as a server with another version of the definition would.
  await server.app.rooms.broadcast('lobby', { type: 'posted', room: 'lobby', id: 'x', text: 'bad' })
  await api.broadcast('lobby', 'posted', { room: 'lobby', id: 1, text: 'good' })
  await new Promise<void>((resolve) => { const off = client.on('posted', () => { off(); resolve() }) })
  t.same(got, [{ type: 'posted', room: 'lobby', id: 1, text: 'good' }], 'only the valid frame reached the listener')
  t.equal(errors.length, 1)
  t.equal(errors[0].code, 'invalid_event')
  t.match(errors[0].message, /"posted" failed its schema: \/id expected integer/)
})
