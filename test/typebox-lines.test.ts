// `fastify.rooms.handle` takes object schemas of both TypeBox lines, `@sinclair/typebox` 0.34 and
// `typebox` 1.x, through real sockets: a valid frame reaches the handler and is acked, an invalid
// one is refused with "Invalid message format: <field> <first schema error>" and never reaches it.
import t from 'tap'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { Type as TypeNext } from 'typebox'
import WebSocket from 'ws'
import { connect as connectClient } from '../lib/client/index.js'
import wsRooms from '../lib/index.js'
import { serve } from './helpers.js'

/** The same message type written with each line. */
const schemas = {
  legacy: Type.Object({
    room: Type.String({ minLength: 1 }),
    choice: Type.Integer({ minimum: 1, maximum: 5 }),
    note: Type.Optional(Type.String())
  }, { additionalProperties: false }),
  next: TypeNext.Object({
    room: TypeNext.String({ minLength: 1 }),
    choice: TypeNext.Integer({ minimum: 1, maximum: 5 }),
    note: TypeNext.Optional(TypeNext.String())
  }, { additionalProperties: false })
}

// First in this file, so typebox 1.x's compiler is not imported yet: the schemas registered before
// the server is ready are compiled as it gets ready, and one that cannot be fails ready().
t.test('a typebox 1.x schema that cannot be compiled fails ready(), naming its type', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(wsRooms)
  app.rooms.handle('fine', schemas.next, () => undefined)
  app.rooms.handle('broken', TypeNext.Object({ code: TypeNext.String({ pattern: '(' }) }), () => undefined)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_INVALID_HANDLER', message: /^rooms\.handle\("broken"\): the schema could not be compiled: Invalid regular expression/ })
  // Once the compiler is loaded, the same mistake is refused by handle() itself.
  t.throws(() => app.rooms.handle('broken-again', TypeNext.Object({ code: TypeNext.String({ pattern: '(' }) }), () => undefined), { message: /^rooms\.handle\("broken-again"\): the schema could not be compiled: Invalid regular expression/ })
})

for (const [line, schema] of Object.entries(schemas)) {
  t.test(`a ${line} schema: valid frames are handled, invalid ones refused at the field`, async (t) => {
    const seen: unknown[] = []
    const s = await serve(t, {}, (app) => {
      app.rooms.handle('vote', schema, (conn, msg) => {
        seen.push(msg)
        return { counted: msg.choice, by: conn.user.id, note: msg.note ?? null }
      })
    })
    const a = await s.open()

    const ack = await a.request({ type: 'vote', room: 'r', choice: 3 }, 'v1')
    t.strictSame(ack, { type: 'ack', id: 'v1', data: { counted: 3, by: a.welcome.user.id, note: null } })
    t.strictSame(await a.request({ type: 'vote', room: 'r', choice: 5, note: 'yes' }, 2), { type: 'ack', id: 2, data: { counted: 5, by: a.welcome.user.id, note: 'yes' } })

    for (const [what, frame, field] of [
      ['wrong field type', { type: 'vote', room: 'r', choice: 'two' }, '/choice'],
      ['not an integer', { type: 'vote', room: 'r', choice: 2.5 }, '/choice'],
      ['out of range', { type: 'vote', room: 'r', choice: 9 }, '/choice'],
      ['too short', { type: 'vote', room: '', choice: 1 }, '/room'],
      ['missing field', { type: 'vote', choice: 1 }, '/room'],
      ['additional property', { type: 'vote', room: 'r', choice: 1, extra: true }, '/extra']
    ] as const) {
      const refusal = await a.request(frame, what)
      t.equal(refusal.code, 'invalid_message', `${what}: invalid_message`)
      t.match(refusal.text, new RegExp(`^Invalid message format: ${field} \\S`), `${what}: names ${field} and the error (${JSON.stringify(refusal.text)})`)
    }
    a.send({ type: 'vote', room: 'r', choice: 1, id: { not: 'an id' } })
    t.match(await a.next({ type: 'error' }), { code: 'invalid_message', text: /^Invalid message format: \/id \S/ }, 'an id neither a string nor a number')
    t.equal(seen.length, 2, 'the handler never ran for a refused frame')
    t.equal(a.ws.readyState, a.ws.OPEN, 'refusals keep the connection open')
  })
}

t.test('a typebox 1.x schema: the error texts', async (t) => {
  const s = await serve(t, {}, (app) => {
    app.rooms.handle('vote', schemas.next, () => undefined)
  })
  const a = await s.open()
  const texts = []
  for (const frame of [
    { type: 'vote', room: 'r', choice: 'two' },
    { type: 'vote', choice: 1 },
    { type: 'vote', room: 'r', choice: 1, extra: true }
  ]) texts.push((await a.request(frame, 'x')).text)
  t.strictSame(texts, [
    'Invalid message format: /choice must be integer',
    'Invalid message format: /room is required',
    'Invalid message format: /extra is not an allowed property'
  ])
})

t.test('a typebox 1.x schema declaring type or id: the frame\'s own type and id rules win', async (t) => {
  const s = await serve(t, {}, (app) => {
    // Declaring them is a mistake (the message type says so: it is `never`); the frame is still checked right.
    app.rooms.handle('tag', TypeNext.Object({ type: TypeNext.Literal('other'), id: TypeNext.Boolean(), label: TypeNext.String() }), (_conn, msg) => (msg as { label: string }).label)
  })
  const a = await s.open()
  t.strictSame(await a.request({ type: 'tag', label: 'x' }, 't1'), { type: 'ack', id: 't1', data: 'x' })
})

t.test('the typed client requests a type registered with a typebox 1.x schema', async (t) => {
  const History = TypeNext.Object({ room: TypeNext.String(), limit: TypeNext.Optional(TypeNext.Integer({ minimum: 1 })) })
  const s = await serve(t, {}, (app) => {
    app.rooms.handle('history', History, (_conn, msg) => Array.from({ length: msg.limit ?? 1 }, (_v, i) => `${msg.room}:${i}`))
  })
  const client = connectClient(s.url, { WebSocket, reconnect: false })
  t.teardown(() => client.close())
  t.strictSame(await client.request('history', { room: 'lobby', limit: 2 }), ['lobby:0', 'lobby:1'])
  await t.rejects(client.request('history', { room: 'lobby', limit: 0 }), { code: 'invalid_message', message: 'Invalid message format: /limit must be >= 1' })
})

t.test('a schema that is not an object schema of either line is refused when registered, naming the type', async (t) => {
  const s = await serve(t)
  t.throws(() => s.app.rooms.handle('vote', TypeNext.String() as never, () => undefined), { message: /rooms\.handle\("vote"\): the schema must be a TypeBox object schema \(Type\.Object\), from @sinclair\/typebox 0\.34 or typebox 1\.x/ })
  const mixed = Type.Object({ room: TypeNext.String() as never })
  t.throws(() => s.app.rooms.handle('vote', mixed, () => undefined), { message: /^rooms\.handle\("vote"\): the schema could not be compiled: / }, 'a 0.34 object around a 1.x field')
})
