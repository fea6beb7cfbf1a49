// Type tests for the public surface (options, fastify.rooms, wire types), run by tstyche.
// Imports go through the package name, so they resolve via package.json "exports" like a user's would.
import { expect, test, describe } from 'tstyche'
import Fastify, { type FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { Type as TypeNext } from 'typebox'
import wsRooms, {
  fastifyWsRooms,
  memoryAdapter,
  type AckMessage,
  type ChatMessageIn,
  type ClientMessage,
  type DrainOptions,
  type MessageId,
  type RefreshMessage,
  type ErrorCode,
  type HandledMessage,
  type ObjectSchema,
  type StaticOf,
  type RoomConnection,
  type RoomMember,
  type RoomsAdapter,
  type RoomsApi,
  type RoomsStats,
  type RoomUser,
  type ServerMessage,
  type WsRoomsOptions
} from 'fastify-ws-rooms'

const app = Fastify()

describe('register', () => {
  test('the default export and the named export are the same plugin', () => {
    expect(wsRooms).type.toBe(fastifyWsRooms)
  })

  test('register accepts no options and every documented option', () => {
    expect(app.register(wsRooms)).type.not.toRaiseError()
    expect(app.register(wsRooms, {})).type.not.toRaiseError()
    expect(app.register(wsRooms, {
      path: '/rooms',
      allowedOrigins: ['https://example.com'],
      allowMissingOrigin: true,
      authenticate: async (token: string, request: FastifyRequest) => token === 'x' ? { id: 'u1', name: 'Ada', ip: request.ip } : null,
      authorizeJoin: (user, room, request) => user.id.length > 0 && room !== 'admin' && request.url.length > 0,
      maxPayload: 1024,
      rateLimit: { max: 10, windowMs: 1000 },
      idleTimeout: 30000,
      maxRoomsPerConnection: 5,
      maxRoomNameLength: 64,
      maxBufferedBytes: 1 << 20,
      adapter: memoryAdapter()
    })).type.not.toRaiseError()
  })

  test('allowedOrigins takes a list, "*", or a sync or async function', () => {
    expect(app.register(wsRooms, { allowedOrigins: '*' })).type.not.toRaiseError()
    expect(app.register(wsRooms, { allowedOrigins: (origin) => origin === undefined })).type.not.toRaiseError()
    expect(app.register(wsRooms, { allowedOrigins: async (origin, request) => origin === request.headers.host })).type.not.toRaiseError()
    expect<WsRoomsOptions['allowedOrigins']>().type.toBeAssignableFrom<(origin: string | undefined) => Promise<boolean>>()
  })

  test('rateLimit may be false', () => {
    expect(app.register(wsRooms, { rateLimit: false })).type.not.toRaiseError()
  })

  test('authenticate may return undefined, null, or a promise of either', () => {
    expect(app.register(wsRooms, { authenticate: () => undefined })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: async () => null })).type.not.toRaiseError()
  })

  test('wrong option types do not compile', () => {
    expect(app.register(wsRooms, { path: 42 })).type.toRaiseError("'number' is not assignable to type 'string'")
    expect(app.register(wsRooms, { maxPayload: '64k' })).type.toRaiseError("Type 'string' is not assignable to type 'number'")
    expect(app.register(wsRooms, { rateLimit: true })).type.toRaiseError("Type 'true' is not assignable to type 'false | RateLimitOptions | undefined'")
    expect(app.register(wsRooms, { rateLimit: { max: 10 } })).type.toRaiseError("Property 'windowMs' is missing in type '{ max: number; }' but required in type 'RateLimitOptions'")
    expect(app.register(wsRooms, { allowedOrigins: 'https://example.com' })).type.toRaiseError('Type \'"https://example.com"\' is not assignable to type \'string[] | "*" | OriginCheck | undefined\'')
    expect(app.register(wsRooms, { allowMissingOrigin: 'yes' })).type.toRaiseError("Type 'string' is not assignable to type 'boolean | undefined'")
    expect(app.register(wsRooms, { idleTimeout: '60s' })).type.toRaiseError("Type 'string' is not assignable to type 'number'")
    expect(app.register(wsRooms, { adapter: {} })).type.toRaiseError("Type '{}' is missing the following properties from type 'RoomsAdapter': init, publishToRoom")
  })

  test('authenticate must resolve to something with a string id', () => {
    expect(app.register(wsRooms, { authenticate: () => ({ name: 'no id' }) })).type.toRaiseError("Property 'id' is missing in type '{ name: string; }' but required in type 'RoomUser'")
    expect(app.register(wsRooms, { authenticate: async () => ({ id: 7 }) })).type.toRaiseError("Type '{ id: number; }' is not assignable to type 'RoomUser'")
    expect(app.register(wsRooms, { authenticate: () => 'u1' })).type.toRaiseError("Type 'string' is not assignable to type 'RoomUser | AuthenticatedSession | Promise<RoomUser | AuthenticatedSession | null | undefined> | null | undefined'")
  })

  test('authorizeJoin must return a boolean', () => {
    expect(app.register(wsRooms, { authorizeJoin: () => 'yes' })).type.toRaiseError("Type 'string' is not assignable to type 'boolean | Promise<boolean>'")
  })

  test('an unknown option does not compile', () => {
    expect(app.register(wsRooms, { port: 3000 })).type.toRaiseError("'port' does not exist")
    expect(app.register(wsRooms, { maxPayloadBytes: 10 })).type.toRaiseError("'maxPayloadBytes' does not exist")
  })
})

describe('fastify.rooms', () => {
  test('is declared on FastifyInstance', () => {
    expect(app.rooms).type.toBe<RoomsApi>()
  })

  test('broadcast, broadcastAll, sendToUser, join, leave return Promise<void>', () => {
    expect(app.rooms.broadcast('lobby', { type: 'chat', text: 'hi' })).type.toBe<Promise<void>>()
    expect(app.rooms.broadcast('lobby', 'plain', { except: 'c1' })).type.toBe<Promise<void>>()
    expect(app.rooms.broadcastAll({ type: 'notice' })).type.toBe<Promise<void>>()
    expect(app.rooms.sendToUser('u1', { type: 'dm' })).type.toBe<Promise<void>>()
    expect(app.rooms.join('c1', 'lobby')).type.toBe<Promise<void>>()
    expect(app.rooms.leave('c1', 'lobby')).type.toBe<Promise<void>>()
  })

  test('members, rooms, stats have their documented shapes', () => {
    expect(app.rooms.members('lobby')).type.toBe<Promise<RoomMember[]>>()
    expect(app.rooms.rooms()).type.toBe<Array<{ room: string, size: number }>>()
    expect(app.rooms.stats()).type.toBe<RoomsStats>()
    expect<RoomsStats>().type.toBe<{
      connections: number
      rooms: number
      messagesIn: number
      messagesOut: number
      rateLimited: number
      rejectedUpgrades: number
      slowConsumersClosed: number
      dropped: number
    }>()
  })

  test('misused rooms calls do not compile', () => {
    expect(app.rooms.broadcast(42, 'x')).type.toRaiseError("Argument of type 'number' is not assignable to parameter of type 'string'")
    expect(app.rooms.broadcast('lobby', 'x', { exclude: 'c1' })).type.toRaiseError("'exclude' does not exist")
    expect(app.rooms.join('c1')).type.toRaiseError('Expected 2 arguments, but got 1')
    expect(app.rooms.sendToUser({ id: 'u1' }, 'x')).type.toRaiseError("Argument of type '{ id: string; }' is not assignable to parameter of type 'string'")
    expect(app.rooms.stats().nope).type.toRaiseError("Property 'nope' does not exist")
  })

  test('handle gives the handler a message typed by the TypeBox schema', () => {
    const schema = Type.Object({ room: Type.String(), votes: Type.Number(), tags: Type.Optional(Type.Array(Type.String())) })
    app.rooms.handle('vote', schema, (conn, msg) => {
      expect(conn).type.toBe<RoomConnection>()
      expect(conn.user).type.toBe<RoomUser>()
      expect(msg.room).type.toBe<string>()
      expect(msg.votes).type.toBe<number>()
      expect(msg.tags).type.toBe<string[] | undefined>()
      expect(msg.type).type.toBe<string>()
      expect(msg.id).type.toBe<string | number | undefined>()
      return { total: msg.votes + 1 }
    })
    expect(app.rooms.handle('vote', schema, async (_conn, msg) => msg.votes)).type.not.toRaiseError()
    expect(app.rooms.handle('noop', Type.Object({}), () => undefined)).type.not.toRaiseError()
  })

  test('a property the schema does not declare does not compile in the handler', () => {
    const schema = Type.Object({ room: Type.String(), votes: Type.Number() })
    app.rooms.handle('vote', schema, (_conn, msg) => {
      expect(msg.text).type.toRaiseError("Property 'text' does not exist")
      expect(msg.votes.toUpperCase()).type.toRaiseError("Property 'toUpperCase' does not exist on type 'number'")
      return undefined
    })
    // A handler whose declared payload disagrees with the schema
    expect(app.rooms.handle('vote', schema, (_conn, _msg: { type: string, votes: string }) => undefined)).type.toRaiseError("Types of property 'votes' are incompatible")
  })

  test('handle needs a TypeBox object schema', () => {
    expect(app.rooms.handle('vote', Type.String(), () => undefined)).type.toRaiseError("Argument of type 'TString' is not assignable to parameter of type 'ObjectSchema'")
    expect(app.rooms.handle('vote', { type: 'object' }, () => undefined)).type.toRaiseError('Argument of type \'{ type: "object"; }\' is not assignable to parameter of type \'ObjectSchema\'')
  })

  test('handle takes a typebox 1.x schema and types the handler\'s message by it', () => {
    const schema = TypeNext.Object({ room: TypeNext.String(), votes: TypeNext.Number(), tags: TypeNext.Optional(TypeNext.Array(TypeNext.String())) })
    app.rooms.handle('vote', schema, (conn, msg) => {
      expect(conn).type.toBe<RoomConnection>()
      expect(msg.room).type.toBe<string>()
      expect(msg.votes).type.toBe<number>()
      expect(msg.tags).type.toBe<string[] | undefined>()
      expect(msg.type).type.toBe<string>()
      expect(msg.id).type.toBe<string | number | undefined>()
      return { total: msg.votes + 1 }
    })
    expect<HandledMessage<typeof schema>>().type.toBe<{ room: string, votes: number, tags?: string[] } & { type: string, id?: string | number }>()
    expect(app.rooms.handle('vote', schema, async (_conn, msg) => msg.votes)).type.not.toRaiseError()
    expect(app.rooms.handle('noop', TypeNext.Object({}), () => undefined)).type.not.toRaiseError()
  })

  test('with a typebox 1.x schema, a field it does not declare or a wrong field type does not compile', () => {
    const schema = TypeNext.Object({ room: TypeNext.String(), votes: TypeNext.Number() })
    app.rooms.handle('vote', schema, (_conn, msg) => {
      expect(msg.text).type.toRaiseError("Property 'text' does not exist")
      expect(msg.votes.toUpperCase()).type.toRaiseError("Property 'toUpperCase' does not exist on type 'number'")
      return undefined
    })
    expect(app.rooms.handle('vote', schema, (_conn, _msg: { type: string, votes: string }) => undefined)).type.toRaiseError("Types of property 'votes' are incompatible")
    expect(app.rooms.handle('vote', TypeNext.String(), () => undefined)).type.toRaiseError("Argument of type 'TString' is not assignable to parameter of type 'ObjectSchema'")
  })

  test('both lines give the same message type for the same schema', () => {
    const legacy = Type.Object({ room: Type.String(), count: Type.Optional(Type.Integer()), kind: Type.Union([Type.Literal('a'), Type.Literal('b')]) })
    const next = TypeNext.Object({ room: TypeNext.String(), count: TypeNext.Optional(TypeNext.Integer()), kind: TypeNext.Union([TypeNext.Literal('a'), TypeNext.Literal('b')]) })
    expect<StaticOf<typeof next>>().type.toBe<StaticOf<typeof legacy>>()
    expect<ObjectSchema>().type.toBeAssignableFrom(legacy)
    expect<ObjectSchema>().type.toBeAssignableFrom(next)
  })

  test('on accepts the four event names with matching listeners', () => {
    expect(app.rooms.on('connect', (conn) => { expect(conn.id).type.toBe<string>() })).type.toBe<RoomsApi>()
    expect(app.rooms.on('disconnect', (conn, code) => { expect(code).type.toBe<number>(); expect(conn).type.toBe<RoomConnection>() })).type.toBe<RoomsApi>()
    expect(app.rooms.on('join', (conn, room) => { expect(room).type.toBe<string>(); expect(conn.rooms).type.toBe<ReadonlySet<string>>() })).type.toBe<RoomsApi>()
    expect(app.rooms.on('leave', (_conn, room) => { expect(room).type.toBe<string>() })).type.toBe<RoomsApi>()
  })

  test('a wrong event name or listener does not compile', () => {
    expect(app.rooms.on('message', () => {})).type.toRaiseError('"message"')
    expect(app.rooms.on('connection', () => {})).type.toRaiseError('"connection"')
    expect(app.rooms.on('join', (_conn: RoomConnection, room: number) => { room.toFixed() })).type.toRaiseError("Argument of type '(_conn: RoomConnection, room: number) => void' is not assignable to parameter of type '(conn: RoomConnection, room: string) => void'")
  })
})

describe('wire types', () => {
  test('client messages are a discriminated union', () => {
    expect<ClientMessage>().type.toBeAssignableFrom({ type: 'join' as const, room: 'r' })
    expect<ClientMessage>().type.toBeAssignableFrom({ type: 'message' as const, room: 'r', text: 't', id: 1 })
    expect<ClientMessage>().type.not.toBeAssignableFrom({ type: 'message' as const, room: 'r' })
    expect<ClientMessage>().type.not.toBeAssignableFrom({ type: 'shout' as const, room: 'r' })
  })

  test('server messages include acks with optional data and errors with documented codes', () => {
    expect<ServerMessage>().type.toBeAssignableFrom<AckMessage>()
    expect<AckMessage>().type.toBeAssignableFrom({ type: 'ack' as const, id: 'a', data: { any: 'thing' } })
    expect<ErrorCode>().type.toBe<'invalid_message' | 'rate_limited' | 'forbidden' | 'not_in_room' | 'too_many_rooms' | 'invalid_room' | 'internal_error' | 'unavailable'>()
  })

  test('memoryAdapter returns a RoomsAdapter', () => {
    expect(memoryAdapter()).type.toBe<RoomsAdapter>()
  })
})

describe('history, presence, cluster-wide control', () => {
  const app = Fastify()

  test('history, presence and members options', () => {
    expect(app.register(wsRooms, {
      history: { size: 50, ttlMs: 60_000, rooms: (room: string) => room.startsWith('chat:') },
      presenceEvents: (room: string) => room === 'stage' ? 'batched' : 'each',
      presenceEachMax: 50,
      presenceInterval: 100,
      membersLimit: 200
    })).type.not.toRaiseError()
    expect(app.register(wsRooms, { history: false, presenceEvents: 'auto' })).type.not.toRaiseError()
    expect(app.register(wsRooms, { presenceEvents: 'sometimes' })).type.toRaiseError()
    expect(app.register(wsRooms, { history: { size: '100' } })).type.toRaiseError()
  })

  test('authenticate may return a session with expiresAt', () => {
    expect(app.register(wsRooms, { authenticate: async () => ({ user: { id: 'u1' }, expiresAt: Date.now() + 60_000 }) })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: () => ({ user: { id: 'u1' }, expiresAt: 'tomorrow' }) })).type.toRaiseError()
  })

  test('authenticate may return grants (with or without expiresAt); authorizePublish gets the message frame', () => {
    expect(app.register(wsRooms, { authenticate: () => ({ user: { id: 'u1' }, grants: { lobby: ['join'], 'team:42:*': ['join', 'publish'], '*': [] } }) })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: async () => ({ user: { id: 'u1' }, expiresAt: 1, grants: { r: ['publish'] } }) })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: () => ({ user: { id: 'u1' }, grants: { r: ['write'] } }) })).type.toRaiseError()
    expect(app.register(wsRooms, { authenticate: () => ({ user: { id: 'u1' } }) })).type.toRaiseError()
    expect(app.register(wsRooms, {
      authorizePublish: (user, room, frame) => {
        expect(frame).type.toBe<ChatMessageIn>()
        return user.id !== 'muted' && room !== 'announcements' && frame.text.length < 500
      }
    })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authorizePublish: async () => true })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authorizePublish: () => 'yes' })).type.toRaiseError()
  })

  test('refresh is a client frame', () => {
    expect<{ type: 'refresh', token: 't', id: 1 }>().type.toBeAssignableTo<ClientMessage>()
    expect<RefreshMessage>().type.toBe<{ type: 'refresh', token: string, id?: MessageId }>()
  })

  test('history(), members(limit), disconnectUser, joinUser, leaveUser', () => {
    const rooms = app.rooms
    expect(rooms.history('r', { after: 10, limit: 5 })).type.toBe<Promise<{ epoch: string, offset: number, messages: Array<Record<string, unknown> & { offset: number }> }>>()
    expect(rooms.members('r', { limit: 10 })).type.toBe<Promise<RoomMember[]>>()
    expect(rooms.disconnectUser('u1', { code: 4003, reason: 'Banned' })).type.toBe<Promise<void>>()
    expect(rooms.joinUser('u1', 'r')).type.toBe<Promise<void>>()
    expect(rooms.leaveUser('u1', 'r')).type.toBe<Promise<void>>()
    expect(rooms.disconnectUser('u1', { code: '4003' })).type.toRaiseError()
  })
})

describe('draining', () => {
  test('drain({ overMs? }) resolves to void', () => {
    expect(app.rooms.drain()).type.toBe<Promise<void>>()
    expect(app.rooms.drain({})).type.toBe<Promise<void>>()
    expect(app.rooms.drain({ overMs: 10_000 })).type.toBe<Promise<void>>()
    expect<Parameters<RoomsApi['drain']>[0]>().type.toBe<DrainOptions | undefined>()
    expect(app.rooms.drain({ overMs: '10s' })).type.toRaiseError()
    expect(app.rooms.drain({ within: 10_000 })).type.toRaiseError()
    expect(app.rooms.drain(10_000)).type.toRaiseError()
  })

  test('the drainOnClose option takes ms', () => {
    expect(app.register(wsRooms, { drainOnClose: 10_000 })).type.not.toRaiseError()
    expect(app.register(wsRooms, { drainOnClose: '10s' })).type.toRaiseError()
  })
})
