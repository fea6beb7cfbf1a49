// `fastify.rooms.asyncapi()`: an AsyncAPI 3.0.0 document that @asyncapi/parser validates with no
// error, for the chat example (its `post` request) and for a `defineMessages` definition
// implemented with results; it names every registered type and carries its schemas.
import t from 'tap'
import { Parser } from '@asyncapi/parser'
import { build } from '../examples/chat/server.js'
import { startServer } from './helpers.js'
import { messages } from './fixtures/typed-messages.js'

async function errorsOf (doc: unknown): Promise<unknown[]> {
  const diagnostics = await new Parser().validate(JSON.stringify(doc))
  return diagnostics.filter((d) => d.severity === 0).map((d) => ({ path: d.path.join('/'), message: d.message }))
}

t.test('the check itself finds errors in a broken document', async (t) => {
  t.not((await errorsOf({ asyncapi: '3.0.0', info: { title: 'x' }, channels: { c: { address: 1 } } })).length, 0)
})

t.test("the chat example's document validates", async (t) => {
  const app = await build({ dbPath: ':memory:' })
  t.teardown(() => app.close())
  await app.ready()
  const doc = app.rooms.asyncapi() as any
  t.same(await errorsOf(doc), [])
  t.equal(doc.asyncapi, '3.0.0')
  t.equal(doc.channels.rooms.address, '/ws')
  const names = Object.values(doc.channels.rooms.messages).map((m: any) => m.name)
  for (const name of ['join', 'leave', 'message', 'members', 'refresh', 'welcome', 'chat', 'ack', 'error', 'added', 'removed', 'presence', 'app.post']) {
    t.ok(names.includes(name), `describes ${name}`)
  }
  t.match(doc.channels.rooms.messages['app.post'].payload, { properties: { type: { const: 'post' }, room: { type: 'string' }, text: { type: 'string' } }, required: ['type', 'room', 'text'] })
})

t.test('implemented types carry their payload and result, from either TypeBox line', async (t) => {
  const server = await startServer({ path: '/rooms' }, (app) => {
    app.rooms.implement(messages, { post: () => ({ id: 1 }), count: () => ({ size: 0 }), typing: () => {} })
  })
  t.teardown(() => server.app.close())
  const doc = server.app.rooms.asyncapi({ title: 'Typed', version: '2.0.0' }) as any
  t.same(await errorsOf(doc), [])
  t.match(doc.info, { title: 'Typed', version: '2.0.0' })
  t.equal(doc.channels.rooms.address, '/rooms')
  const m = doc.channels.rooms.messages
  t.match(m['app.count'].payload, { properties: { room: { type: 'string' }, type: { const: 'count' } } })
  t.match(m['app.post.ack'].payload, { properties: { data: { type: 'object', properties: { id: { type: 'integer' } } } } })
  t.match(m['app.count.ack'].payload, { properties: { data: { properties: { size: { type: 'integer', minimum: 0 } } } } })
  t.notOk('app.typing.ack' in m, 'a request without a result has no ack data')
  t.match(doc.operations.send_post, { action: 'send', reply: { messages: [{ $ref: '#/channels/rooms/messages/app.post.ack' }] } })
})
