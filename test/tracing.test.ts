// Spans per handled client frame, from outside: their names and attributes, ERROR with the code on
// refusals, a frame's traceparent continued, handlers running inside the span; and none before a
// tracer provider is registered. One process-wide provider (as an application's SDK sets up) with
// an in-memory exporter.
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncHooksContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { test } from 'tap'
import { RoomsError } from '../lib/index.js'
import { serve, until } from './helpers.js'

const exporter = new InMemorySpanExporter()

function registerProvider (): void {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
  context.setGlobalContextManager(new AsyncHooksContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
}

async function spanNamed (name: string, match: (span: ReadableSpan) => boolean = () => true): Promise<ReadableSpan> {
  let found: ReadableSpan | undefined
  await until(() => (found = exporter.getFinishedSpans().find((s) => s.name === name && match(s))) !== undefined, 5000, `a finished span ${name}`)
  return found!
}

const schema = { type: 'object', properties: { room: { type: 'string' } }, additionalProperties: true } as never

test('without a registered tracer provider no span is made, and frames are handled as always', async (t) => {
  const server = await serve(t, {})
  const a = await server.open()
  t.equal((await a.request({ type: 'join', room: 'lobby' })).type, 'ack')
  t.equal((await a.request({ type: 'message', room: 'nowhere', text: 'x' })).code, 'not_in_room')
  t.equal(exporter.getFinishedSpans().length, 0)
})

test('each handled frame is a span: names, attributes, refusals, traceparent, handlers inside', async (t) => {
  registerProvider()
  let activeInHandler: string | undefined
  const server = await serve(t, { rateLimit: { max: 20, windowMs: 60_000 } }, (app) => {
    app.rooms.handle('lookup', schema, async (_conn, frame) => {
      activeInHandler = trace.getActiveSpan()?.spanContext().spanId
      // A span the handler makes is a child of the frame's span.
      await trace.getTracer('app').startActiveSpan('db query', async (span) => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        span.end()
      })
      return (frame as { room?: string }).room
    })
    app.rooms.handle('fail', schema, () => { throw new Error('boom') })
    app.rooms.handle('deny', schema, () => { throw new RoomsError('forbidden', 'No') })
  })
  const a = await server.open()
  const b = await server.open()
  const id = a.welcome.connectionId

  t.equal((await a.request({ type: 'join', room: 'lobby' })).type, 'ack')
  const join = await spanNamed('ws_rooms join')
  t.equal(join.kind, SpanKind.SERVER)
  t.same(join.attributes, { 'ws_rooms.connection_id': id, 'ws_rooms.room': 'lobby' })
  t.equal(join.status.code, SpanStatusCode.UNSET)

  await b.request({ type: 'join', room: 'lobby' })
  t.equal((await a.request({ type: 'message', room: 'lobby', text: 'hi' })).type, 'ack')
  await spanNamed('ws_rooms message', (s) => s.attributes['ws_rooms.connection_id'] === id)
  t.equal((await a.request({ type: 'members', room: 'lobby' })).type, 'ack')
  await spanNamed('ws_rooms members')
  t.equal((await a.request({ type: 'leave', room: 'lobby' })).type, 'ack')
  await spanNamed('ws_rooms leave')

  // Refused: ERROR, with the code.
  t.equal((await a.request({ type: 'message', room: 'lobby', text: 'gone' })).code, 'not_in_room')
  const refused = await spanNamed('ws_rooms message', (s) => s.status.code === SpanStatusCode.ERROR)
  t.equal(refused.attributes['ws_rooms.error_code'], 'not_in_room')
  t.equal((await a.request({ type: 'deny' })).code, 'forbidden')
  t.equal((await spanNamed('ws_rooms deny')).attributes['ws_rooms.error_code'], 'forbidden')
  t.notOk('ws_rooms.room' in (await spanNamed('ws_rooms deny')).attributes, 'no room attribute for a frame without one')
  t.equal((await a.request({ type: 'fail' })).code, 'internal_error')
  const failed = await spanNamed('ws_rooms fail')
  t.equal(failed.status.code, SpanStatusCode.ERROR)
  t.equal(failed.attributes['ws_rooms.error_code'], 'internal_error')
  t.match(failed.events, [{ name: 'exception', attributes: { 'exception.message': 'boom' } }], 'the handler\'s exception is recorded')
  t.equal((await a.request({ type: 'invented-by-the-client' })).code, 'invalid_message')
  t.equal((await spanNamed('ws_rooms unknown')).attributes['ws_rooms.error_code'], 'invalid_message', 'a type nobody registered is named unknown')

  // An application type, with a traceparent: the trace goes on, and the handler runs in the span.
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const parentId = '00f067aa0ba902b7'
  t.equal((await a.request({ type: 'lookup', room: 'lobby', traceparent: `00-${traceId}-${parentId}-01` })).data, 'lobby')
  const lookup = await spanNamed('ws_rooms lookup')
  t.equal(lookup.spanContext().traceId, traceId, 'the frame\'s trace is continued')
  t.equal(lookup.parentSpanContext?.spanId, parentId, 'as a child of the client\'s span')
  t.equal(activeInHandler, lookup.spanContext().spanId, 'the handler runs in the frame\'s span')
  const query = await spanNamed('db query')
  t.equal(query.parentSpanContext?.spanId, lookup.spanContext().spanId, 'a span the handler starts is its child')

  // A built-in frame continues a trace the same way (and is otherwise handled as without it).
  const otherTrace = '0af7651916cd43dd8448eb211c80319c'
  t.equal((await a.request({ type: 'join', room: 'traced', traceparent: `00-${otherTrace}-b7ad6b7169203331-01` })).type, 'ack')
  t.equal((await spanNamed('ws_rooms join', (s) => s.attributes['ws_rooms.room'] === 'traced')).spanContext().traceId, otherTrace)

  // Without a traceparent each frame starts its own trace.
  t.equal((await a.request({ type: 'lookup', room: 'x' })).data, 'x')
  const fresh = await spanNamed('ws_rooms lookup', (s) => s.attributes['ws_rooms.room'] === 'x')
  t.not(fresh.spanContext().traceId, traceId)
  t.equal(fresh.parentSpanContext, undefined, 'a root span')
})

test('rate-limited frames are refused spans too', async (t) => {
  exporter.reset()
  const server = await serve(t, { rateLimit: { max: 2, windowMs: 60_000 } })
  const a = await server.open()
  for (let i = 0; i < 3; i++) a.send({ type: 'join', room: `r${i}`, id: i })
  t.equal((await a.next((m) => m.id === 2)).code, 'rate_limited')
  const limited = await spanNamed('ws_rooms join', (s) => s.attributes['ws_rooms.room'] === 'r2')
  t.equal(limited.status.code, SpanStatusCode.ERROR)
  t.equal(limited.attributes['ws_rooms.error_code'], 'rate_limited')
})

test('a handler\'s broadcast carries its trace over Redis: the delivery on the other node links to it', async (t) => {
  const { redisAdapter } = await import('../lib/adapters/redis.js')
  const { SHARED_REDIS, deleteKeys, uniquePrefix } = await import('./fixtures/redis-helpers.js')
  const prefix = uniquePrefix('tracing')
  t.teardown(() => deleteKeys(SHARED_REDIS, prefix))
  const setup = (app: import('fastify').FastifyInstance): void => {
    app.rooms.handle('shout', schema, async (_conn, frame) => {
      await app.rooms.broadcast((frame as { room: string }).room, { type: 'shouted' })
    })
  }
  const one = await serve(t, { adapter: redisAdapter({ url: SHARED_REDIS, prefix }) }, setup)
  const two = await serve(t, { adapter: redisAdapter({ url: SHARED_REDIS, prefix }) }, setup)
  const a = await one.open()
  const b = await two.open()
  t.equal((await a.request({ type: 'join', room: 'lobby' })).type, 'ack')
  t.equal((await b.request({ type: 'join', room: 'lobby' })).type, 'ack')
  exporter.reset()

  t.equal((await a.request({ type: 'shout', room: 'lobby' })).type, 'ack')
  await b.next({ type: 'shouted' })
  const shout = await spanNamed('ws_rooms shout')
  const delivered = await spanNamed('ws_rooms deliver')
  t.equal(delivered.kind, SpanKind.CONSUMER)
  t.equal(delivered.attributes['ws_rooms.room'], 'lobby')
  t.same(delivered.links.map((l) => [l.context.traceId, l.context.spanId]), [[shout.spanContext().traceId, shout.spanContext().spanId]],
    'linked to the handler\'s span on the publishing node')
  t.equal(exporter.getFinishedSpans().filter((s) => s.name === 'ws_rooms deliver').length, 1, 'only the other node delivers from Redis')

  // Outside any span (a REST route's broadcast with no tracing of its own) nothing is carried.
  exporter.reset()
  await one.app.rooms.broadcast('lobby', { type: 'plain' })
  await b.next({ type: 'plain' })
  t.equal(exporter.getFinishedSpans().length, 0, 'no delivery span without a trace to link to')
})
