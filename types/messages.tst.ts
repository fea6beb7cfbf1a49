// Type tests for typed messages: one `defineMessages` definition types `rooms.implement`'s
// handlers and senders and the client's `request` and `on`, for both TypeBox lines. Each wrong
// use a user can make fails with the diagnostic shown here.
import { describe, expect, test } from 'tstyche'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { Type as TypeNext } from 'typebox'
import { defineMessages, type ImplementedApi } from 'fastify-ws-rooms'
import { connect, defineMessages as clientDefineMessages, RoomsClient } from 'fastify-ws-rooms/client'

const messages = defineMessages({
  requests: {
    post: { payload: Type.Object({ room: Type.String(), text: Type.String() }), result: Type.Object({ id: Type.Integer() }) },
    typing: { payload: Type.Object({ room: Type.String() }) }
  },
  events: {
    posted: Type.Object({ room: Type.String(), id: Type.Integer(), text: Type.String() })
  }
})

const messagesNext = clientDefineMessages({
  requests: {
    post: { payload: TypeNext.Object({ room: TypeNext.String(), text: TypeNext.String() }), result: TypeNext.Object({ id: TypeNext.Integer() }) },
    typing: { payload: TypeNext.Object({ room: TypeNext.String() }) }
  },
  events: {
    posted: TypeNext.Object({ room: TypeNext.String(), id: TypeNext.Integer(), text: TypeNext.String() })
  }
})

const app = Fastify()

describe('rooms.implement', () => {
  test('right uses compile, for both TypeBox lines', () => {
    for (const m of [messages, messagesNext] as const) {
      expect(app.rooms.implement(m, {
        post: (_conn, msg) => ({ id: msg.text.length }),
        typing: async () => {}
      })).type.not.toRaiseError()
    }
    app.rooms.implement(messages, {
      post: async (conn, msg) => {
        expect(msg.type).type.toBe<'post'>()
        expect(msg.room).type.toBe<string>()
        expect(conn.user.id).type.toBe<string>()
        return { id: 1 }
      },
      typing: () => {}
    })
    const api = app.rooms.implement(messagesNext, { post: () => ({ id: 1 }), typing: () => {} })
    expect(api).type.toBe<ImplementedApi<typeof messagesNext>>()
    expect(api.broadcast('lobby', 'posted', { room: 'lobby', id: 1, text: 'hi' }, { except: 'c1' })).type.toBe<Promise<void>>()
    expect(api.sendToUser('u1', 'posted', { room: 'lobby', id: 1, text: 'hi' })).type.toBe<Promise<void>>()
    expect(api.broadcastAll('posted', { room: 'lobby', id: 1, text: 'hi' })).type.toBe<Promise<void>>()
  })

  test('a handler missing fails to compile', () => {
    expect(app.rooms.implement(messages, { post: () => ({ id: 1 }) })).type.toRaiseError(
      "Property 'typing' is missing in type '{ post: () => { id: number; }; }' but required in type 'MessageHandlers<"
    )
    expect(app.rooms.implement(messagesNext, { post: () => ({ id: 1 }) })).type.toRaiseError("Property 'typing' is missing")
  })

  test('a wrong result type from a handler fails to compile', () => {
    expect(app.rooms.implement(messages, { post: () => ({ id: 'one' }), typing: () => {} })).type.toRaiseError(
      "Type 'string' is not assignable to type 'number'"
    )
    expect(app.rooms.implement(messagesNext, { post: async () => ({ ids: 1 }), typing: () => {} })).type.toRaiseError(
      "Type 'Promise<{ ids: number; }>' is not assignable to type '{ id: number; } | Promise<{ id: number; }>'"
    )
  })

  test('a wrong event payload in api.broadcast fails to compile', () => {
    const api = app.rooms.implement(messages, { post: () => ({ id: 1 }), typing: () => {} })
    expect(api.broadcast('lobby', 'posted', { room: 'lobby', id: '1', text: 'hi' })).type.toRaiseError(
      "Type 'string' is not assignable to type 'number'"
    )
    expect(api.broadcast('lobby', 'posted', { room: 'lobby', text: 'hi' })).type.toRaiseError(
      "Property 'id' is missing in type '{ room: string; text: string; }' but required in type"
    )
    expect(api.broadcast('lobby', 'psoted', { room: 'lobby', id: 1, text: 'hi' })).type.toRaiseError(
      'Argument of type \'"psoted"\' is not assignable to parameter of type \'"posted"\''
    )
  })
})

describe('connect(url, { messages })', () => {
  test('request and on are typed by the definition, for both TypeBox lines', async () => {
    const client = connect('ws://localhost/ws', { messages })
    expect(client).type.toBeAssignableTo<RoomsClient<any>>()
    expect(await client.request('post', { room: 'r', text: 'hi' })).type.toBe<{ id: number }>()
    expect(await client.request('typing', { room: 'r' })).type.toBe<void>()
    client.on('posted', (frame) => {
      expect(frame.type).type.toBe<'posted'>()
      expect(frame.id).type.toBe<number>()
    })
    const next = connect('ws://localhost/ws', { messages: messagesNext })
    expect(await next.request('post', { room: 'r', text: 'hi' })).type.toBe<{ id: number }>()
    next.on('posted', (frame) => { expect(frame.text).type.toBe<string>() })
  })

  test('an unknown request type fails to compile', () => {
    const client = connect('ws://localhost/ws', { messages })
    expect(client.request('pots', { room: 'r', text: 'hi' })).type.toRaiseError(
      'Argument of type \'"pots"\' is not assignable to parameter of type \'"post" | "typing"\''
    )
  })

  test('a wrong payload field fails to compile', () => {
    const client = connect('ws://localhost/ws', { messages: messagesNext })
    expect(client.request('post', { room: 'r', txt: 'hi' })).type.toRaiseError(
      "Object literal may only specify known properties, but 'txt' does not exist in type"
    )
    expect(client.request('post', { room: 1, text: 'hi' })).type.toRaiseError("Type 'number' is not assignable to type 'string'")
  })

  test('an unknown event type or a wrong field in a listener fails to compile', () => {
    const client = connect('ws://localhost/ws', { messages })
    expect(client.on('psoted', () => {})).type.toRaiseError()
    expect(client.on('posted', (frame) => frame.txt)).type.toRaiseError("Property 'txt' does not exist on type")
  })

  test('the v2 form connect<App>(url) keeps working', async () => {
    interface App { requests: { ping: { payload: { n: number }, result: { pong: number } } }, events: { tick: { type: 'tick', at: number } } }
    const client = connect<App>('ws://localhost/ws')
    expect(await client.request('ping', { n: 1 })).type.toBe<{ pong: number }>()
    client.on('tick', (frame) => { expect(frame.at).type.toBe<number>() })
  })
})
