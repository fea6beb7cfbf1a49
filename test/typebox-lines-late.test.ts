// A typebox 1.x schema given to `fastify.rooms.handle` on a server already serving, before typebox
// 1.x's compiler was ever imported in this process: frames of that type sent at once wait for the
// compile (they are not refused as unknown, nor let through unchecked), and a schema that cannot
// be compiled drops its type and is logged, naming it.
import t from 'tap'
import { Type as TypeNext } from 'typebox'
import { captureLogs, roundTrip, serve } from './helpers.js'

t.test('handle() on a serving server with the first typebox 1.x schema: frames wait for its compile', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {}, undefined, { logger: { level: 'error', stream: logs.stream } })
  const a = await s.open()
  s.app.rooms.handle('late', TypeNext.Object({ n: TypeNext.Integer() }), (_conn, msg) => msg.n + 1)
  s.app.rooms.handle('late-broken', TypeNext.Object({ code: TypeNext.String({ pattern: '(' }) }), () => 'never')
  a.send({ type: 'late', n: 1, id: 1 })
  a.send({ type: 'late', n: 'one', id: 2 })
  a.send({ type: 'late-broken', code: 'x', id: 3 })
  t.strictSame(await a.next({ id: 1 }), { type: 'ack', id: 1, data: 2 })
  t.strictSame(await a.next({ id: 2 }), { type: 'error', code: 'invalid_message', text: 'Invalid message format: /n must be integer', id: 2 })
  t.strictSame(await a.next({ id: 3 }), { type: 'error', code: 'invalid_message', text: 'Invalid message format: unknown type "late-broken"', id: 3 })
  await roundTrip(a)
  const logged = logs.records().filter((r) => r.level === 50)
  t.equal(logged.length, 1, 'the broken schema was logged once')
  t.match(logged[0].msg, /^rooms\.handle\("late-broken"\): the schema could not be compiled: Invalid regular expression/)
})
