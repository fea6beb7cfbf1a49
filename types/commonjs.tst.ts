// Type tests for CommonJS consumers (a `.cts` file, or `.ts` in a CommonJS package, with module
// node16/nodenext): `require('fastify-ws-rooms')` and its subpaths resolve through the "require"
// condition to types/*.d.cts. An ESM test file reaches those declarations with import types that
// carry `resolution-mode: require`, exactly what `import x = require('…')` would give.
import { describe, expect, test } from 'tstyche'
import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import {
  type RoomConnection,
  type RoomsAdapter,
  type RoomsApi,
  type RoomsError as EsmRoomsError,
  type RoomUser,
  type ServerMessage,
  type WsRoomsOptions
} from 'fastify-ws-rooms'
import type { RoomsClient, RoomsClientError, ConnectionState } from 'fastify-ws-rooms/client'
import { Type as TypeNext } from 'typebox'

type CjsRooms = typeof import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } })
type CjsRedis = typeof import('fastify-ws-rooms/redis', { with: { 'resolution-mode': 'require' } })
type CjsClient = typeof import('fastify-ws-rooms/client', { with: { 'resolution-mode': 'require' } })
type CjsTypeBox = typeof import('@sinclair/typebox', { with: { 'resolution-mode': 'require' } })

declare const wsRooms: CjsRooms
declare const redisAdapter: CjsRedis
declare const connect: CjsClient
declare const TypeCjs: CjsTypeBox['Type']

const app = Fastify()

describe('require(\'fastify-ws-rooms\')', () => {
  test('is the plugin itself: register takes it, .default and .fastifyWsRooms too', () => {
    expect(app.register(wsRooms)).type.not.toRaiseError()
    expect(app.register(wsRooms, { path: '/rooms', rateLimit: false, adapter: wsRooms.memoryAdapter() })).type.not.toRaiseError()
    expect(app.register(wsRooms.default, { path: '/rooms' })).type.not.toRaiseError()
    expect(app.register(wsRooms.fastifyWsRooms, { path: '/rooms' })).type.not.toRaiseError()
  })

  test('options are checked as for ESM users', () => {
    expect(app.register(wsRooms, { path: 42 })).type.toRaiseError("Type 'number' is not assignable to type 'string'")
    expect(app.register(wsRooms, { port: 3000 })).type.toRaiseError("'port' does not exist in type 'FastifyRegisterOptions<WsRoomsOptions>'")
    expect(app.register(wsRooms, { authenticate: () => ({ name: 'no id' }) })).type.toRaiseError("Property 'id' is missing in type '{ name: string; }' but required in type 'RoomUser'")
  })

  test('the named values are there', () => {
    expect(wsRooms.memoryAdapter()).type.toBe<RoomsAdapter>()
    expect(new wsRooms.RoomsError('forbidden', 'no')).type.toBe<EsmRoomsError>()
    expect(wsRooms.RoomsError).type.not.toBeConstructableWith('nope', 'no')
  })

  test('the types are the ESM ones, reachable on the namespace', () => {
    expect<import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).RoomUser>().type.toBe<RoomUser>()
    expect<import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).WsRoomsOptions>().type.toBe<WsRoomsOptions>()
    expect<import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).ServerMessage>().type.toBe<ServerMessage>()
    expect<import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).RoomsApi>().type.toBe<RoomsApi>()
    expect<import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).DrainOptions>().type.toBe<{ overMs?: number }>()
  })

  test('fastify.rooms is declared for CommonJS programs too', () => {
    expect(app.rooms).type.toBe<RoomsApi>()
    expect(app.rooms.stats().connections).type.toBe<number>()
    expect(app.rooms.broadcast('lobby', { type: 'chat' })).type.toBe<Promise<void>>()
  })

  test('rooms.handle takes a schema from TypeBox\'s CommonJS build, typed', () => {
    const schema = TypeCjs.Object({ room: TypeCjs.String(), votes: TypeCjs.Number() })
    app.rooms.handle('vote', schema, (conn, msg) => {
      expect(conn).type.toBe<RoomConnection>()
      expect(msg.room).type.toBe<string>()
      expect(msg.votes).type.toBe<number>()
      expect(msg.id).type.toBe<string | number | undefined>()
      return msg.votes + 1
    })
    app.rooms.handle('vote', schema, (_conn, msg) => {
      expect(msg.text).type.toRaiseError("Property 'text' does not exist")
    })
    expect(app.rooms.handle('vote', TypeCjs.String(), () => undefined)).type.toRaiseError("Argument of type 'TString' is not assignable to parameter of type 'TObject<TProperties>'")
    type Vote = import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).HandledMessage<typeof schema>
    expect<Vote>().type.toBe<{ room: string, votes: number } & { type: string, id?: string | number }>()
  })

  test('rooms.handle takes a typebox 1.x schema (one build, the same for require and import), typed', () => {
    const schema = TypeNext.Object({ room: TypeNext.String(), votes: TypeNext.Number() })
    app.rooms.handle('vote', schema, (_conn, msg) => {
      expect(msg.votes).type.toBe<number>()
      expect(msg.text).type.toRaiseError("Property 'text' does not exist")
    })
    type Vote = import('fastify-ws-rooms', { with: { 'resolution-mode': 'require' } }).HandledMessage<typeof schema>
    expect<Vote>().type.toBe<{ room: string, votes: number } & { type: string, id?: string | number }>()
  })
})

describe('require(\'fastify-ws-rooms/redis\')', () => {
  test('is redisAdapter itself, and .redisAdapter', () => {
    expect(redisAdapter({ url: 'redis://127.0.0.1:6379', prefix: 'chat' })).type.toBe<RoomsAdapter>()
    expect(redisAdapter.redisAdapter({ client: {} as unknown as Redis })).type.toBe<RoomsAdapter>()
    expect(app.register(wsRooms, { adapter: redisAdapter() })).type.not.toRaiseError()
    expect(redisAdapter).type.not.toBeCallableWith({ url: 6379 })
    expect<import('fastify-ws-rooms/redis', { with: { 'resolution-mode': 'require' } }).RedisAdapterOptions['prefix']>().type.toBe<string | undefined>()
  })
})

describe('require(\'fastify-ws-rooms/client\')', () => {
  test('is connect itself, with .connect and .default', () => {
    expect(connect('ws://127.0.0.1/ws')).type.toBe<RoomsClient>()
    expect(connect.connect('ws://127.0.0.1/ws', { reconnect: false })).type.toBe<RoomsClient>()
    expect(connect.default('ws://127.0.0.1/ws')).type.toBe<RoomsClient>()
    expect(connect).type.not.toBeCallableWith(42)
    expect(connect.PROTOCOL).type.toBe<'rooms.v1'>()
    expect(connect.shouldReconnect(1001)).type.toBe<boolean>()
    expect(new connect.RoomsClientError('timeout', 'x')).type.toBe<RoomsClientError>()
    expect<import('fastify-ws-rooms/client', { with: { 'resolution-mode': 'require' } }).ConnectionState>().type.toBe<ConnectionState>()
  })

  test('application specs built from CommonJS TypeBox schemas type request()', () => {
    const History = TypeCjs.Object({ room: TypeCjs.String() })
    expect(History).type.toBeAssignableTo<import('@sinclair/typebox', { with: { 'resolution-mode': 'require' } }).TObject>()
    type HistorySpec = import('fastify-ws-rooms/client', { with: { 'resolution-mode': 'require' } }).RequestFor<typeof History, string[]>
    const client = connect<{ requests: { history: HistorySpec } }>('ws://127.0.0.1/ws')
    expect(client.request('history', { room: 'lobby' })).type.toBe<Promise<string[]>>()
    expect(client.request('history', { room: 1 })).type.toRaiseError("Type 'number' is not assignable to type 'string'")
  })
})
