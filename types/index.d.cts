// CommonJS view of the public types, for `require` consumers (`.cts`, or `.ts` in a CommonJS
// package, with module node16/nodenext). The runtime of dist/cjs/index.cjs is the plugin function
// itself with the named exports hanging off it (`module.exports = Object.assign(plugin, mod)`), so
// the declarations use `export =` of a function merged with a namespace, as Fastify's own plugins
// do. Every type is the ESM declaration (./index.d.ts), referenced, never restated, except two:
// `HandledMessage` also takes schemas of TypeBox's CommonJS build, and `RoomsUserMap` is declared
// here for a CommonJS program to augment (see below). Loading this file also brings the
// `declare module 'fastify'` augmentation (`fastify.rooms`) along.
import type * as esm from './index.js' with { 'resolution-mode': 'import' }
// Resolved as `require` resolves it, like the user's own `require('@sinclair/typebox')`:
import type { Static, TObject } from '@sinclair/typebox'

type Plugin = typeof esm.fastifyWsRooms

declare namespace fastifyWsRooms {
  // Wire protocol (./protocol.d.ts)
  export type RoomUser = esm.RoomUser
  export type MessageId = esm.MessageId
  export type StreamPosition = esm.StreamPosition
  export type JoinMessage = esm.JoinMessage
  export type LeaveMessage = esm.LeaveMessage
  export type ChatMessageIn = esm.ChatMessageIn
  export type MembersMessage = esm.MembersMessage
  export type RefreshMessage = esm.RefreshMessage
  export type ClientMessage = esm.ClientMessage
  export type WelcomeEvent = esm.WelcomeEvent
  export type JoinEvent = esm.JoinEvent
  export type LeaveEvent = esm.LeaveEvent
  export type PresenceEvent = esm.PresenceEvent
  export type AddedEvent = esm.AddedEvent
  export type RemovedEvent = esm.RemovedEvent
  export type SystemEvent = esm.SystemEvent
  export type ChatEvent = esm.ChatEvent
  export type AckMessage = esm.AckMessage
  export type HistoryJoinAckData = esm.HistoryJoinAckData
  export type RecoveryAckData = esm.RecoveryAckData
  export type MessageAckData = esm.MessageAckData
  export type MembersAckData = esm.MembersAckData
  export type ErrorCode = esm.ErrorCode
  export type ErrorMessage = esm.ErrorMessage
  export type ServerMessage = esm.ServerMessage
  export type CloseCode = esm.CloseCode
  // Adapters
  export type RoomMember = esm.RoomMember
  export type PresenceChange = esm.PresenceChange
  export type PresenceDiff = esm.PresenceDiff
  export type HistoryEntry = esm.HistoryEntry
  export type HistoryPage = esm.HistoryPage
  export type HistoryLimits = esm.HistoryLimits
  export type RoomsHistory = esm.RoomsHistory
  export type UserCommand = esm.UserCommand
  export type AdapterNode = esm.AdapterNode
  export type RoomsAdapter = esm.RoomsAdapter
  // Options
  export type OriginCheck = esm.OriginCheck
  export type RateLimitOptions = esm.RateLimitOptions
  export type HistoryOptions = esm.HistoryOptions
  export type MetricsOptions = esm.MetricsOptions
  export type MetricsRegistry = esm.MetricsRegistry
  export type PresenceMode = esm.PresenceMode
  export type AuthenticatedSession = esm.AuthenticatedSession
  export type RoomGrants = esm.RoomGrants
  export type WsRoomsOptions = esm.WsRoomsOptions
  export type AppUser = esm.AppUser
  /** Declare the application's user type here (see index.d.ts); CommonJS programs augment this one. */
  export interface RoomsUserMap {}
  // Schemas of either TypeBox line (./schema.d.ts)
  export type ObjectSchema = esm.ObjectSchema
  export type StaticOf<S> = esm.StaticOf<S>
  export type TObject034 = esm.TObject034
  export type TObjectNext = esm.TObjectNext
  // fastify.rooms
  export type RoomConnection = esm.RoomConnection
  /**
   * As in index.d.ts, also for a schema of the CommonJS build of `@sinclair/typebox` (what
   * `require` gives). typebox 1.x has one build, the same in both views.
   */
  export type HandledMessage<S extends TObject | esm.TObjectNext> = (S extends TObject ? Static<S> : esm.StaticOf<S>) & { type: string, id?: esm.MessageId }
  export type RoomsEventName = esm.RoomsEventName
  export type RoomsEvents = esm.RoomsEvents
  export type RoomHistory = esm.RoomHistory
  export type DisconnectOptions = esm.DisconnectOptions
  export type DrainOptions = esm.DrainOptions
  export type RoomsStats = esm.RoomsStats
  export type BroadcastOptions = esm.BroadcastOptions
  export type RoomsApi = esm.RoomsApi
  // Typed messages (./messages.d.ts)
  export type MessageDefinitions = esm.MessageDefinitions
  export type RequestDefinition = esm.RequestDefinition
  export type AppOf<M> = esm.AppOf<M>
  export type StaticOfAny<S> = esm.StaticOfAny<S>
  export type MessageHandlers<M> = esm.MessageHandlers<M>
  export type ImplementedApi<M> = esm.ImplementedApi<M>
  export type AnySchema = esm.AnySchema
  export type RequestTypeOf<M> = esm.RequestTypeOf<M>
  export type EventTypeOf<M> = esm.EventTypeOf<M>
  export type RequestPayloadOf<M, K extends PropertyKey> = esm.RequestPayloadOf<M, K>
  export type RequestResultOf<M, K extends PropertyKey> = esm.RequestResultOf<M, K>
  export type EventPayloadOf<M, K extends PropertyKey> = esm.EventPayloadOf<M, K>
  export type EventFrameOf<M, K extends PropertyKey> = esm.EventFrameOf<M, K>
  export type RequestMessageOf<M, K extends PropertyKey> = esm.RequestMessageOf<M, K>
  // Values
  export const fastifyWsRooms: Plugin
  export { fastifyWsRooms as default }
  export const memoryAdapter: typeof esm.memoryAdapter
  export const RoomsError: typeof esm.RoomsError
  export const defineMessages: typeof esm.defineMessages
  export type RoomsError = esm.RoomsError
}

// TypeBox ships two builds whose declarations are distinct (its `Kind` symbol is declared once in
// each), so a schema made by the CommonJS build, the one a CommonJS file gets, is not assignable
// to the ESM `TObject` that `rooms.handle` is declared with in index.d.ts. Programs that load this
// file get an overload of `RoomsApi.handle` for those schemas (interface merging through a module
// augmentation of the ESM declaration file); ESM programs, and lib/, never see it.
declare module './index.js' {
  // A CommonJS program declares its user type on this file's namespace (`declare module
  // 'fastify-ws-rooms'` resolves here for it); the ESM declaration reads it through this.
  interface RoomsUserMap extends fastifyWsRooms.RoomsUserMap {}
  interface RoomsApi {
    handle<S extends TObject> (
      type: string,
      schema: S,
      handler: (conn: esm.RoomConnection, message: fastifyWsRooms.HandledMessage<S>) => unknown
    ): void
  }
}

/** The plugin: `app.register(require('fastify-ws-rooms'), options)`. */
declare function fastifyWsRooms (...args: Parameters<Plugin>): ReturnType<Plugin>

export = fastifyWsRooms
