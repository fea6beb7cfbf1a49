// Type tests for the `metrics` option and the trace context an adapter may carry.
import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import wsRooms, { type AdapterNode, type MetricsOptions, type MetricsRegistry, type RoomsAdapter } from 'fastify-ws-rooms'

const app = Fastify()

test('metrics: a boolean, or a prom-client registry with a prefix and roomLabel', () => {
  expect(app.register(wsRooms, { metrics: true })).type.not.toRaiseError()
  expect(app.register(wsRooms, { metrics: false })).type.not.toRaiseError()
  expect(app.register(wsRooms, { metrics: { registry: new Registry(), prefix: 'chat_', roomLabel: (room) => room.slice(0, room.indexOf(':')) } })).type.not.toRaiseError()
  expect<Registry>().type.toBeAssignableTo<MetricsRegistry>()
  expect<MetricsOptions['roomLabel']>().type.toBe<((room: string) => string) | undefined>()
})

test('metrics: anything else does not compile', () => {
  expect(app.register(wsRooms, { metrics: 'yes' })).type.toRaiseError()
  expect(app.register(wsRooms, { metrics: { registry: {} } })).type.toRaiseError()
  expect(app.register(wsRooms, { metrics: { roomLabel: (room: string) => room.length } })).type.toRaiseError()
  expect(app.register(wsRooms, { metrics: { prefix: 1 } })).type.toRaiseError()
})

test('an adapter may take and deliver a traceparent, or ignore it', () => {
  expect<RoomsAdapter['publishToRoom']>().type.toBe<(room: string, payload: string, except?: string, traceparent?: string) => void | Promise<void>>()
  expect<(room: string, payload: string) => void>().type.toBeAssignableTo<RoomsAdapter['publishToRoom']>()
  expect<AdapterNode['deliverToRoom']>().type.toBe<(room: string, payload: string, except?: string, traceparent?: string) => void>()
})
