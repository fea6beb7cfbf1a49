// One definition of an application's messages (`defineMessages`), shared by the server
// (`fastify.rooms.implement`) and the client (`connect(url, { messages })`). No fastify, Node or
// DOM types here: the client's types use this file too.
import type * as TypeBox034 from '@sinclair/typebox'
// @ts-ignore: the module is absent when typebox 1.x is not installed (see schema.d.ts)
import type * as TypeBoxNext from 'typebox'
import type { MessageId } from './protocol.js'
import type { ObjectSchema, StaticOf } from './schema.js'

type IsAny<T> = 0 extends 1 & T ? true : false
export {}

/** Any schema of either TypeBox line (a request's `result` need not be an object). */
export type AnySchema = TypeBox034.TSchema | (string extends keyof TypeBoxNext.TSchema ? never : TypeBoxNext.TSchema)

/** The values a schema of either line accepts (`unknown` for a schema whose line is not known). */
export type StaticOfAny<S> = IsAny<S> extends true
  ? any
  : S extends TypeBox034.TObject<infer P>
    ? TypeBox034.Static<TypeBox034.TObject<P>>
    : S extends TypeBox034.TSchema
      ? TypeBox034.Static<S>
      : S extends TypeBoxNext.TObject<infer P>
        ? StaticOf<TypeBoxNext.TObject<P>>
        : S extends TypeBoxNext.TSchema
          ? TypeBoxNext.Static<S>
          : unknown

/** A client → server message type: its payload (an object schema) and, if it answers with data, the ack's `result`. */
export interface RequestDefinition {
  payload: ObjectSchema
  result?: AnySchema
}

/** `requests` (client → server, answered by an ack) and `events` (server → client frames). */
export interface MessageDefinitions {
  requests?: Record<string, RequestDefinition>
  events?: Record<string, ObjectSchema>
}

type RequestsOf<M> = M extends { requests: infer R } ? (R extends object ? R : {}) : {}
type EventsOf<M> = M extends { events: infer E } ? (E extends object ? E : {}) : {}

/** The request types of a definition. */
export type RequestTypeOf<M> = keyof RequestsOf<M> & string
/** The event types of a definition. */
export type EventTypeOf<M> = keyof EventsOf<M> & string

/** What a request of type `K` carries (its fields, without `type` and `id`). */
export type RequestPayloadOf<M, K extends PropertyKey> = RequestsOf<M> extends Record<K, { payload: infer S }> ? StaticOf<S> : never
/** The ack's data of a request of type `K`: `Static<result>`, or `void` without a result. */
export type RequestResultOf<M, K extends PropertyKey> = RequestsOf<M> extends Record<K, infer D>
  ? D extends { result: infer R } ? StaticOfAny<R> : void
  : never
/** The fields of an event of type `K` (what `api.broadcast` takes), without `type`. */
export type EventPayloadOf<M, K extends PropertyKey> = EventsOf<M> extends Record<K, infer S> ? StaticOf<S> : never
/** The frame a client receives for an event of type `K`. */
export type EventFrameOf<M, K extends PropertyKey> = { type: K } & EventPayloadOf<M, K>

/** A request frame as a handler of `implement` gets it. */
export type RequestMessageOf<M, K extends PropertyKey> = RequestPayloadOf<M, K> & { type: K, id?: MessageId }

/** The client's application spec (`RoomsClient<App>`) a definition gives. */
export type AppOf<M> = IsAny<M> extends true
  ? { requests: Record<string, { payload: Record<string, unknown>, result: unknown }>, events: Record<string, { type: string, [key: string]: unknown }> }
  : {
      requests: { [K in RequestTypeOf<M>]: { payload: RequestPayloadOf<M, K>, result: RequestResultOf<M, K> } }
      events: { [K in EventTypeOf<M>]: EventFrameOf<M, K> }
    }

/**
 * Returns `def` as it is (typed exactly). Throws a TypeError naming the entry when a name is a type
 * the protocol uses (`join`, `leave`, `message`, `members`, `refresh`, `ack`, `error`, `system`,
 * `chat`), a payload is not an object schema, a request payload declares `type` or `id`, or an
 * event payload declares `type`.
 */
export declare function defineMessages<M extends MessageDefinitions> (def: M): M
