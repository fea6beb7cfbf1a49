// CommonJS view of `fastify-ws-rooms/client`: dist/cjs/client.cjs exports `connect` itself, with
// the named exports (and `.default`) on it. The types are the ESM declarations (./client.d.ts),
// referenced, never restated (only `RequestFor` is also typed against the CommonJS build of @sinclair/typebox, see
// index.d.cts); like those, nothing here depends on fastify, Node or the DOM.
import type * as esm from './client.js' with { 'resolution-mode': 'import' }
// Resolved as `require` resolves it, like the user's own `require('@sinclair/typebox')`:
import type { Static, TObject } from '@sinclair/typebox'

declare namespace connect {
  // Wire protocol (./protocol.d.ts)
  export type RoomUser = esm.RoomUser
  export type MessageId = esm.MessageId
  export type JoinMessage = esm.JoinMessage
  export type LeaveMessage = esm.LeaveMessage
  export type ChatMessageIn = esm.ChatMessageIn
  export type ClientMessage = esm.ClientMessage
  export type WelcomeEvent = esm.WelcomeEvent
  export type JoinEvent = esm.JoinEvent
  export type LeaveEvent = esm.LeaveEvent
  export type SystemEvent = esm.SystemEvent
  export type ChatEvent = esm.ChatEvent
  export type AckMessage = esm.AckMessage
  export type StreamPosition = esm.StreamPosition
  export type MembersMessage = esm.MembersMessage
  export type RefreshMessage = esm.RefreshMessage
  export type PresenceEvent = esm.PresenceEvent
  export type AddedEvent = esm.AddedEvent
  export type RemovedEvent = esm.RemovedEvent
  export type HistoryJoinAckData = esm.HistoryJoinAckData
  export type RecoveryAckData = esm.RecoveryAckData
  export type MessageAckData = esm.MessageAckData
  export type MembersAckData = esm.MembersAckData
  export type ErrorCode = esm.ErrorCode
  export type ErrorMessage = esm.ErrorMessage
  export type ServerMessage = esm.ServerMessage
  export type CloseCode = esm.CloseCode
  // Socket and options
  export type WebSocketLike = esm.WebSocketLike
  export type WebSocketConstructorLike = esm.WebSocketConstructorLike
  export type ReconnectOptions = esm.ReconnectOptions
  export type ConnectOptions = esm.ConnectOptions
  export type RequestOptions = esm.RequestOptions
  // Errors, state, events
  export type ClientErrorCode = esm.ClientErrorCode
  export type ConnectionState = esm.ConnectionState
  export type OpenInfo = esm.OpenInfo
  export type CloseInfo = esm.CloseInfo
  export type ReconnectingInfo = esm.ReconnectingInfo
  export type RecoveryInfo = esm.RecoveryInfo
  export type MembershipInfo = esm.MembershipInfo
  export type SessionInfo = esm.SessionInfo
  export type RejoinedInfo = esm.RejoinedInfo
  export type RoomPresence = esm.RoomPresence
  export type ClientEvents = esm.ClientEvents
  export type ClientEventName = esm.ClientEventName
  // Application types
  export type AppFrame = esm.AppFrame
  export type RequestSpec<P extends object = Record<string, unknown>, R = unknown> = esm.RequestSpec<P, R>
  /**
   * As in client.d.ts, also for a schema of the CommonJS build of `@sinclair/typebox` (what
   * `require` gives; see index.d.cts). typebox 1.x has one build, the same in both views.
   */
  export type RequestFor<S extends TObject | esm.TObjectNext, R = unknown> = esm.RequestSpec<S extends TObject ? Static<S> : esm.StaticOf<S>, R>
  export type ObjectSchema = esm.ObjectSchema
  export type StaticOf<S> = esm.StaticOf<S>
  export type TObject034 = esm.TObject034
  export type TObjectNext = esm.TObjectNext
  export type AppSpec = esm.AppSpec
  export type UntypedApp = esm.UntypedApp
  export type RequestName<App> = esm.RequestName<App>
  export type RequestPayload<App, K extends PropertyKey> = esm.RequestPayload<App, K>
  export type RequestResult<App, K extends PropertyKey> = esm.RequestResult<App, K>
  export type AppEventName<App> = esm.AppEventName<App>
  export type AppEventFrame<App, K extends PropertyKey> = esm.AppEventFrame<App, K>
  export type ClientAppOf<App> = esm.ClientAppOf<App>
  // Typed messages (./messages.d.ts)
  export type AnySchema = esm.AnySchema
  export type RequestTypeOf<M> = esm.RequestTypeOf<M>
  export type EventTypeOf<M> = esm.EventTypeOf<M>
  export type RequestPayloadOf<M, K extends PropertyKey> = esm.RequestPayloadOf<M, K>
  export type RequestResultOf<M, K extends PropertyKey> = esm.RequestResultOf<M, K>
  export type EventPayloadOf<M, K extends PropertyKey> = esm.EventPayloadOf<M, K>
  export type EventFrameOf<M, K extends PropertyKey> = esm.EventFrameOf<M, K>
  export type RequestMessageOf<M, K extends PropertyKey> = esm.RequestMessageOf<M, K>
  // Values
  export const RoomsClient: typeof esm.RoomsClient
  export type RoomsClient<App extends esm.AppSpec = esm.UntypedApp> = esm.RoomsClient<App>
  export const RoomsClientError: typeof esm.RoomsClientError
  export type RoomsClientError = esm.RoomsClientError
  export const PROTOCOL: typeof esm.PROTOCOL
  export const shouldReconnect: typeof esm.shouldReconnect
  // Typed messages (./messages.d.ts)
  export type MessageDefinitions = esm.MessageDefinitions
  export type RequestDefinition = esm.RequestDefinition
  export type AppOf<M> = esm.AppOf<M>
  export type StaticOfAny<S> = esm.StaticOfAny<S>
  export const connect: typeof esm.connect
  export const defineMessages: typeof esm.defineMessages
  export { connect as default }
}

/** Open a client: `const connect = require('fastify-ws-rooms/client')`; also `.connect` and `.default`. */
declare function connect<App extends esm.AppSpec = esm.UntypedApp> (...args: Parameters<typeof esm.connect>): esm.RoomsClient<App>

export = connect
