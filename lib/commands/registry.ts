// Application message types from `fastify.rooms.handle(type, schema, handler)`: checked once when
// registered, their envelope schema (the user's fields plus `type` and `id`) compiled once.
import type { TObject, TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { HandledMessage, RoomConnection } from '../../types/index.js'
import { InvalidHandlerError } from '../errors.js'
import { compile, envelopeSchema, isClientFrameType } from '../protocol/client-frames.js'

export interface RegisteredHandler {
  check: TypeCheck<TSchema>
  run: (conn: RoomConnection, message: any) => unknown
}

export class HandlerRegistry {
  /** By type; null prototype so no frame's type reaches Object's keys. */
  private readonly handlers: Record<string, RegisteredHandler> = Object.create(null)

  register<S extends TObject> (type: string, schema: S, handler: (conn: RoomConnection, message: HandledMessage<S>) => unknown): void {
    if (typeof type !== 'string' || type.length === 0) throw new InvalidHandlerError(String(type), 'the type must be a non-empty string')
    if (isClientFrameType(type)) throw new InvalidHandlerError(type, 'this type is built in')
    if (this.handlers[type] !== undefined) throw new InvalidHandlerError(type, 'a handler for this type exists already')
    if (schema === null || typeof schema !== 'object' || schema.type !== 'object' || typeof schema.properties !== 'object') {
      throw new InvalidHandlerError(type, 'the schema must be a TypeBox object schema (Type.Object)')
    }
    if (typeof handler !== 'function') throw new InvalidHandlerError(type, 'the handler must be a function')
    this.handlers[type] = { check: compile(envelopeSchema(type, schema)), run: handler }
  }

  get (type: string): RegisteredHandler | undefined {
    return this.handlers[type]
  }
}
