// Type tests for `fastify-ws-rooms/client`, run by tstyche. Imports go through the package name,
// so they resolve via package.json "exports" like a user's would.
import { describe, expect, test } from 'tstyche'
import { Type, type TObject } from '@sinclair/typebox'
import { Type as TypeNext } from 'typebox'
import WebSocket from 'ws'
import connectDefault, {
  connect,
  PROTOCOL,
  RoomsClient,
  RoomsClientError,
  shouldReconnect,
  type AddedEvent,
  type ChatEvent,
  type ClientErrorCode,
  type CloseInfo,
  type ConnectionState,
  type ErrorCode,
  type MembersAckData,
  type MembershipInfo,
  type SessionInfo,
  type ObjectSchema,
  type OpenInfo,
  type RecoveryInfo,
  type RemovedEvent,
  type RoomPresence,
  type ReconnectingInfo,
  type RequestFor,
  type RequestSpec,
  type RoomUser,
  type SystemEvent,
  type WebSocketConstructorLike
} from 'fastify-ws-rooms/client'

// What an application registered on the server with `fastify.rooms.handle`:
const History = Type.Object({ room: Type.String(), limit: Type.Optional(Type.Integer()) })
const Post = Type.Object({ room: Type.String(), text: Type.String() })
interface Saved { id: number, room: string, user: string, text: string, createdAt: string }
interface TypingFrame { type: 'typing', room: string, user: RoomUser }
interface ChatApp {
  requests: {
    history: RequestFor<typeof History, Saved[]>
    post: RequestFor<typeof Post, Saved>
    ping: RequestSpec<{}, 'pong'>
  }
  events: { typing: TypingFrame }
}

const LegacyRename = Type.Object({ room: Type.String(), name: Type.String(), note: Type.Optional(Type.String()) })

const untyped = connect('ws://localhost:3000/ws')
const typed = connect<ChatApp>('/ws', { token: 'jwt.token.here' })

describe('connect', () => {
  test('the request specs come from the server\'s TypeBox schemas', () => {
    expect(History).type.toBeAssignableTo<TObject>()
    expect(Post).type.toBeAssignableTo<TObject>()
    expect<ChatApp['requests']['history']['payload']>().type.toBe<{ room: string, limit?: number }>()
  })

  test('request specs from typebox 1.x schemas type request() the same way', () => {
    const Rename = TypeNext.Object({ room: TypeNext.String(), name: TypeNext.String(), note: TypeNext.Optional(TypeNext.String()) })
    const client = connect<{ requests: { rename: RequestFor<typeof Rename, { ok: boolean }> } }>('ws://localhost:3000/ws')
    expect(client.request('rename', { room: 'r', name: 'Ada' })).type.toBe<Promise<{ ok: boolean }>>()
    expect(client.request('rename', { room: 'r', name: 'Ada', note: 'x' })).type.not.toRaiseError()
    expect(client.request('rename', { room: 'r', nmae: 'Ada' })).type.toRaiseError("'nmae' does not exist in type '{ note?: string; room: string; name: string; }'")
    expect(client.request('rename', { room: 'r', name: 7 })).type.toRaiseError("Type 'number' is not assignable to type 'string'")
    expect<RequestFor<typeof Rename>['payload']>().type.toBe<RequestFor<typeof LegacyRename>['payload']>()
    expect(Rename).type.toBeAssignableTo<ObjectSchema>()
    expect(LegacyRename).type.toBeAssignableTo<ObjectSchema>()
  })

  test('returns a RoomsClient synchronously; the default export is connect', () => {
    expect(untyped).type.toBe<RoomsClient>()
    expect(typed).type.toBe<RoomsClient<ChatApp>>()
    expect(connectDefault).type.toBe(connect)
    expect(PROTOCOL).type.toBe<'rooms.v1'>()
    expect(shouldReconnect(1001)).type.toBe<boolean>()
  })

  test('accepts every documented option', () => {
    expect(connect('wss://example.com/ws', {
      token: async () => 'fresh',
      tokenTransport: 'query',
      protocols: ['extra.v1'],
      WebSocket,
      reconnect: { initialDelayMs: 100, maxDelayMs: 5000, factor: 1.5, jitter: 0.2, maxAttempts: 10, maxHandshakeFailures: 3 },
      requestTimeoutMs: 5000,
      connectTimeoutMs: 5000,
      maxQueuedFrames: 0,
      presence: (room) => room.startsWith('small:'),
      refresh: { marginMs: 60_000, jitterMs: 30_000 }
    })).type.not.toRaiseError()
    expect(connect('ws://x', { presence: false, refresh: false })).type.not.toRaiseError()
    expect(connect('ws://x', { refresh: { marginMs: '1m' } })).type.toRaiseError()
    expect(connect(new URL('ws://localhost/ws'), { reconnect: false })).type.not.toRaiseError()
    expect(connect('ws://x', { restartJitterMs: 10_000 })).type.not.toRaiseError()
    expect(connect('ws://x', { restartJitterMs: '5s' })).type.toRaiseError("Type 'string' is not assignable to type 'number'")
  })

  test('the ws package is a WebSocket implementation', () => {
    expect(WebSocket).type.toBeAssignableTo<WebSocketConstructorLike>()
  })

  test('rejects misuse of options', () => {
    expect(connect('ws://x', { token: 42 })).type.toRaiseError("Type 'number' is not assignable to type 'string | (() => string | Promise<string>) | undefined'")
    expect(connect('ws://x', { tokenTransport: 'header' })).type.toRaiseError('Type \'"header"\' is not assignable to type \'"protocol" | "query" | undefined\'')
    expect(connect('ws://x', { reconnect: true })).type.toRaiseError("Type 'true' is not assignable to type 'false | ReconnectOptions | undefined'")
    expect(connect('ws://x', { reconnect: { factor: '2' } })).type.toRaiseError("Type 'string' is not assignable to type 'number'")
    expect(connect('ws://x', { WebSocket: class {} })).type.toRaiseError("is not assignable to type 'WebSocketConstructorLike'")
    expect(connect('ws://x', { protocols: 'rooms.v1' })).type.toRaiseError("Type 'string' is not assignable to type 'string[]'")
    expect(connect('ws://x', { presence: 'auto' })).type.toRaiseError("Type 'string' is not assignable to type 'boolean | ((room: string) => boolean) | undefined'")
    expect(connect(42)).type.toRaiseError("Argument of type 'number' is not assignable to parameter of type 'string | URL'")
  })
})

describe('calls', () => {
  test('join, leave and send resolve with nothing', () => {
    expect(typed.join('lobby')).type.toBe<Promise<void>>()
    expect(typed.leave('lobby', { timeoutMs: 100 })).type.toBe<Promise<void>>()
    expect(typed.send('lobby', 'hi')).type.toBe<Promise<void>>()
    expect(typed.ready()).type.toBe<Promise<void>>()
    expect(typed.close(4000, 'bye')).type.toBe<Promise<void>>()
  })

  test('members answers with the room across nodes; presence is the view, once loaded', () => {
    expect(typed.members('lobby')).type.toBe<Promise<MembersAckData>>()
    expect(typed.presence('lobby')).type.toBe<RoomPresence | undefined>()
    expect<RoomPresence>().type.toBe<{ room: string, size: number, members: RoomUser[], complete: boolean }>()
    expect(typed.members()).type.toRaiseError('Expected 1-2 arguments, but got 0')
  })

  test('core calls reject wrong arguments', () => {
    expect(typed.join(1)).type.toRaiseError("Argument of type 'number' is not assignable to parameter of type 'string'")
    expect(typed.send('lobby')).type.toRaiseError('Expected 2-3 arguments, but got 1')
    expect(typed.send('lobby', { text: 'hi' })).type.toRaiseError("Argument of type '{ text: string; }' is not assignable to parameter of type 'string'")
    expect(typed.leave()).type.toRaiseError('Expected 1-2 arguments, but got 0')
  })

  test('request is typed from the TypeBox schemas: payload in, ack data out', () => {
    expect(typed.request('history', { room: 'lobby' })).type.toBe<Promise<Saved[]>>()
    expect(typed.request('history', { room: 'lobby', limit: 10 }, { timeoutMs: 50 })).type.toBe<Promise<Saved[]>>()
    expect(typed.request('post', { room: 'lobby', text: 'hi' })).type.toBe<Promise<Saved>>()
    expect(typed.request('ping')).type.toBe<Promise<'pong'>>()
  })

  test('request rejects unknown types, wrong payloads and core types', () => {
    expect(typed.request('histroy', { room: 'lobby' })).type.toRaiseError('Argument of type \'"histroy"\' is not assignable to parameter of type \'"history" | "post" | "ping"\'')
    expect(typed.request('history', { room: 1 })).type.toRaiseError("Type 'number' is not assignable to type 'string'")
    expect(typed.request('history', { limit: 10 })).type.toRaiseError("Property 'room' is missing in type '{ limit: number; }'")
    expect(typed.request('history')).type.toRaiseError('Expected 2-3 arguments, but got 1')
    expect(typed.request('post', { room: 'lobby' })).type.toRaiseError("Property 'text' is missing in type '{ room: string; }'")
    expect(typed.request('join', { room: 'lobby' })).type.toRaiseError('Argument of type \'"join"\' is not assignable to parameter of type \'"history" | "post" | "ping"\'')
  })

  test('without an application spec, any type and payload object, unknown result', () => {
    expect(untyped.request('anything', { x: 1 })).type.toBe<Promise<unknown>>()
    expect(untyped.request('anything')).type.toBe<Promise<unknown>>()
    expect(untyped.request('anything', 'text')).type.toRaiseError("Argument of type 'string' is not assignable to parameter of type 'Record<string, unknown>'")
  })
})

describe('events', () => {
  test('built-in events have typed listeners', () => {
    typed.on('chat', (event) => {
      expect(event).type.toBe<ChatEvent>()
      expect(event.user).type.toBe<RoomUser>()
    })
    typed.on('system', (event) => {
      expect(event).type.toBe<SystemEvent>()
      if (event.event === 'welcome') expect(event.connectionId).type.toBe<string>()
    })
    typed.on('error', (err) => {
      expect(err).type.toBe<RoomsClientError>()
      expect(err.code).type.toBe<ErrorCode | ClientErrorCode>()
    })
    typed.on('open', (info) => { expect(info).type.toBe<OpenInfo>() })
    typed.on('close', (info) => { expect(info).type.toBe<CloseInfo>() })
    typed.on('reconnecting', (info) => { expect(info).type.toBe<ReconnectingInfo>() })
    typed.on('recovery', (info) => {
      expect(info).type.toBe<RecoveryInfo>()
      expect(info).type.toBe<{ room: string, recovered: boolean, missed: number }>()
    })
    typed.on('presence', (view) => { expect(view).type.toBe<RoomPresence>() })
    typed.on('membership', (info) => {
      expect(info).type.toBe<MembershipInfo>()
      expect(info).type.toBe<{ room: string, joined: boolean }>()
    })
    typed.on('rejoined', (info) => { expect(info).type.toBe<{ room: string }>() })
    typed.on('session', (info) => { expect(info).type.toBe<SessionInfo>(); expect(info.expiresAt).type.toBe<number | undefined>() })
    typed.on('open', (info) => {
      expect(info.rooms).type.toBe<string[]>()
      expect(info.pending).type.toBe<string[]>()
    })
    typed.on('system', (event) => {
      if (event.event === 'added') {
        expect(event).type.toBe<AddedEvent>()
        expect(event.epoch).type.toBe<string | undefined>()
        expect(event.offset).type.toBe<number | undefined>()
      }
      if (event.event === 'removed') expect(event).type.toBe<RemovedEvent>()
    })
    typed.on('state', (state, previous) => {
      expect(state).type.toBe<ConnectionState>()
      expect(previous).type.toBe<ConnectionState>()
    })
  })

  test('application events are typed by name', () => {
    typed.on('typing', (frame) => { expect(frame).type.toBe<TypingFrame>() })
    expect(typed.once('typing', (frame: TypingFrame) => frame.room)).type.toBe<() => void>()
    untyped.on('whatever', (frame) => { expect(frame).type.toBe<{ type: string, [key: string]: unknown }>() })
  })

  test('misuse fails: unknown events, wrong listener types', () => {
    expect(typed.on('typo', () => {})).type.toRaiseError('Argument of type \'"typo"\' is not assignable to parameter of type \'keyof ClientEvents\'')
    expect(typed.on('chat', (event: SystemEvent) => event)).type.toRaiseError("Type 'ChatEvent' is not assignable to type 'SystemEvent'")
    expect(typed.on('typing', (frame: ChatEvent) => frame)).type.toRaiseError("Property 'text' is missing in type 'TypingFrame' but required in type 'ChatEvent'")
    expect(typed.on('state', (state: number) => state)).type.toRaiseError("Argument of type '(state: number) => number' is not assignable to parameter of type '(state: ConnectionState, previous: ConnectionState) => void'")
  })

  test('state and properties', () => {
    expect(typed.state).type.toBe<ConnectionState>()
    expect(typed.connectionId).type.toBe<string | undefined>()
    expect(typed.user).type.toBe<RoomUser | undefined>()
    expect(typed.rooms).type.toBe<ReadonlySet<string>>()
    expect(typed.roomState('r')).type.toBe<'joined' | 'rejoining' | undefined>()
    expect(typed.url).type.toBe<string>()
  })
})

describe('errors', () => {
  test('RoomsClientError carries a code, and the HTTP status of a refused upgrade', () => {
    const err = new RoomsClientError('forbidden', 'refused', { status: 403 })
    expect(err).type.toBeAssignableTo<Error>()
    expect(err.status).type.toBe<number | undefined>()
    expect(new RoomsClientError('nope', 'x')).type.toRaiseError('Argument of type \'"nope"\' is not assignable to parameter of type')
  })
})

describe('wire types', () => {
  test('are the server\'s: one definition (types/protocol.d.ts) behind both entry points', () => {
    expect<RoomUser>().type.toBe<import('fastify-ws-rooms').RoomUser>()
    expect<ErrorCode>().type.toBe<import('fastify-ws-rooms').ErrorCode>()
    expect<import('fastify-ws-rooms/client').ServerMessage>().type.toBe<import('fastify-ws-rooms').ServerMessage>()
    expect<import('fastify-ws-rooms/client').ClientMessage>().type.toBe<import('fastify-ws-rooms').ClientMessage>()
    expect<import('fastify-ws-rooms/client').CloseCode>().type.toBe<import('fastify-ws-rooms').CloseCode>()
  })
})
