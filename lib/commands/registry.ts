// Application message types from `fastify.rooms.handle(type, schema, handler)`: checked when
// registered, their envelope schema (the user's fields plus `type` and `id`) compiled once. A
// typebox 1.x schema compiles once that line's compiler is imported, so asynchronously the first
// time: the server is not ready before every such schema compiled (schemasCompiled, index.ts).
import type { ObjectSchema, RoomConnection } from '../../types/index.js'
import { isPromise } from '../async.js'
import { InvalidHandlerError } from '../errors.js'
import { isClientFrameType } from '../protocol/client-frames.js'
import { compileHandlerSchema, type FrameValidator } from '../protocol/handler-schema.js'

export interface RegisteredHandler {
  /** Undefined until the schema is compiled (a typebox 1.x schema waits for its compiler's import). */
  check: FrameValidator | undefined
  /** While `check` is undefined: settles when it is set, or the handler was dropped (its schema failed). */
  compiled?: Promise<unknown>
  run: (conn: RoomConnection, message: any) => unknown
  /** The schema as given (the AsyncAPI document describes it). */
  schema: ObjectSchema
  /** The ack's data, for a type registered by `implement` with a `result`. */
  result?: object
}

export class HandlerRegistry {
  /** By type; null prototype so no frame's type reaches Object's keys. */
  private readonly handlers: Record<string, RegisteredHandler> = Object.create(null)
  /** Schemas still compiling (typebox 1.x's compiler being imported). */
  private readonly compiling = new Set<Promise<unknown>>()
  /** The first schema that failed to compile before the server was ready: `ready()` fails with it. */
  private schemaError: Error | undefined
  /** Set once the server is ready: a schema that fails to compile later can only be logged. */
  private schemasChecked = false
  private readonly logError: (err: Error) => void

  /** `logError`: how a schema that fails to compile once the server is ready is reported. */
  constructor (logError: (err: Error) => void) {
    this.logError = logError
  }

  // Not generic: the message's type is the public declaration's business (types/index.d.ts).
  register (type: string, schema: ObjectSchema, handler: (conn: RoomConnection, message: any) => unknown): void {
    if (typeof type !== 'string' || type.length === 0) throw new InvalidHandlerError(String(type), 'the type must be a non-empty string')
    if (isClientFrameType(type)) throw new InvalidHandlerError(type, 'this type is built in')
    if (this.handlers[type] !== undefined) throw new InvalidHandlerError(type, 'a handler for this type exists already')
    const given = schema as unknown as Record<string, unknown> | null
    if (given === null || typeof given !== 'object' || given.type !== 'object' || given.properties === null || typeof given.properties !== 'object') {
      throw new InvalidHandlerError(type, 'the schema must be a TypeBox object schema (Type.Object), from @sinclair/typebox 0.34 or typebox 1.x')
    }
    if (typeof handler !== 'function') throw new InvalidHandlerError(type, 'the handler must be a function')
    const refused = (err: unknown): Error => new InvalidHandlerError(type, `the schema could not be compiled: ${(err as Error)?.message ?? String(err)}`)
    let compiled: FrameValidator | Promise<FrameValidator>
    try {
      compiled = compileHandlerSchema(type, given)
    } catch (err) {
      throw refused(err)
    }
    if (!isPromise(compiled)) {
      this.handlers[type] = { check: compiled, run: handler, schema }
      return
    }
    const entry: RegisteredHandler = { check: undefined, run: handler, schema }
    const settled = compiled.then((check) => {
      entry.check = check
    }, (err: unknown) => {
      if (this.handlers[type] === entry) delete this.handlers[type]
      const error = refused(err)
      if (this.schemasChecked) this.logError(error)
      else this.schemaError ??= error
    })
    entry.compiled = settled
    this.compiling.add(settled)
    settled.then(() => { this.compiling.delete(settled) }, () => {})
    this.handlers[type] = entry
  }

  /**
   * Another schema of `type` being compiled (an `implement`ed request's result): the server is not
   * ready before it compiled, and fails to start when it cannot be.
   */
  track (type: string, compiling: Promise<unknown>): void {
    const settled = compiling.then(() => {}, (err: unknown) => {
      const error = new InvalidHandlerError(type, `the result schema could not be compiled: ${(err as Error)?.message ?? String(err)}`)
      if (this.schemasChecked) this.logError(error)
      else this.schemaError ??= error
    })
    this.compiling.add(settled)
    settled.then(() => { this.compiling.delete(settled) }, () => {})
  }

  /** Every registered type, in the order registered. */
  entries (): Array<[string, RegisteredHandler]> {
    return Object.entries(this.handlers)
  }

  get (type: string): RegisteredHandler | undefined {
    return this.handlers[type]
  }

  /** Wait for the schemas still compiling; rejects with the first that failed (its handler was dropped). */
  async schemasCompiled (): Promise<void> {
    await Promise.all(this.compiling)
    this.schemasChecked = true
    if (this.schemaError !== undefined) throw this.schemaError
  }
}
