// Type tests for a user type declared once (`RoomsUserMap`): `conn.user` in handlers and
// listeners has it, and what `authenticate` returns is checked against it. The declaration is
// global to the program, so it lives in this file alone (index.tst.ts checks the undeclared case).
import { expect, test, describe } from 'tstyche'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { Type as TypeNext } from 'typebox'
import wsRooms, { defineMessages, type AppUser, type RoomConnection } from 'fastify-ws-rooms'

declare module 'fastify-ws-rooms' {
  interface RoomsUserMap {
    user: { id: string, name: string, admin: boolean }
  }
}

interface User { id: string, name: string, admin: boolean }

const app = Fastify()

describe('a declared user type', () => {
  test('is the type of conn.user in handlers of either TypeBox line', () => {
    app.rooms.handle('rename', Type.Object({ name: Type.String() }), (conn, msg) => {
      expect(conn.user).type.toBe<User>()
      expect(conn.user.name).type.toBe<string>()
      expect(msg.name).type.toBe<string>()
    })
    app.rooms.handle('promote', TypeNext.Object({ to: TypeNext.String() }), (conn) => {
      expect(conn.user.admin).type.toBe<boolean>()
    })
    expect<AppUser>().type.toBe<User>()
    expect<RoomConnection['user']>().type.toBe<User>()
  })

  test('a typo in a user field does not compile', () => {
    app.rooms.handle('rename', Type.Object({ name: Type.String() }), (conn) => {
      expect(conn.user.nmae).type.toRaiseError("Property 'nmae' does not exist on type '{ id: string; name: string; admin: boolean; }'")
    })
    expect(app.rooms.on('connect', (conn) => { conn.user.nmae.toUpperCase() })).type.toRaiseError("Property 'nmae' does not exist")
  })

  test('is the type of conn.user in the handlers of rooms.implement, for both TypeBox lines', () => {
    const messages = defineMessages({
      requests: {
        promote: { payload: Type.Object({ to: Type.String() }), result: Type.Object({ by: Type.String() }) },
        demote: { payload: TypeNext.Object({ to: TypeNext.String() }) }
      }
    })
    app.rooms.implement(messages, {
      promote: (conn) => {
        expect(conn.user).type.toBe<User>()
        return { by: conn.user.name }
      },
      demote: (conn) => {
        expect(conn.user.nmae).type.toRaiseError("Property 'nmae' does not exist on type '{ id: string; name: string; admin: boolean; }'")
      }
    })
  })

  test('is the type of conn.user in fastify.rooms.on listeners', () => {
    app.rooms.on('connect', (conn) => { expect(conn.user.name).type.toBe<string>() })
    app.rooms.on('join', (conn, room) => { expect(conn.user).type.toBe<User>(); expect(room).type.toBe<string>() })
    app.rooms.on('disconnect', (conn) => { expect(conn.user.admin).type.toBe<boolean>() })
  })

  test('authenticate must return it (or a session carrying it), authorizeJoin is given it', () => {
    expect(app.register(wsRooms, { authenticate: async () => ({ id: 'u1', name: 'Ada', admin: false }) })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: () => ({ user: { id: 'u1', name: 'Ada', admin: true }, expiresAt: 0 }) })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: () => null })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authenticate: async () => ({ id: 'u1', name: 'Ada' }) })).type.toRaiseError("Property 'admin' is missing in type '{ id: string; name: string; }'")
    expect(app.register(wsRooms, { authenticate: () => ({ user: { id: 'u1' }, expiresAt: 0 }) })).type.toRaiseError()
    expect(app.register(wsRooms, { authorizeJoin: (user, room) => user.admin || room !== 'staff' })).type.not.toRaiseError()
    expect(app.register(wsRooms, { authorizeJoin: (user) => user.role === 'x' })).type.toRaiseError("Property 'role' does not exist")
  })
})
