// `fastify.rooms.implement(messages, handlers)`: every request type of a `defineMessages`
// definition registered as `handle` registers it, with a check of what its handler returns against
// the request's `result` (compiled once, here), and senders of the definition's events.
import type { BroadcastOptions, ImplementedApi, MessageDefinitions, ObjectSchema, RoomConnection } from '../../types/index.js'
import { isPromise } from '../async.js'
import { defineMessages } from '../client/messages.js'
import { compileResultSchema, type ResultValidator } from '../protocol/result-schema.js'
import type { HandlerRegistry, RegisteredHandler } from './registry.js'

/** The facade's senders the typed ones go through (so §6's and history's rules hold unchanged). */
export interface Senders {
  broadcast (room: string, message: unknown, options?: BroadcastOptions): Promise<void>
  sendToUser (userId: string, message: unknown): Promise<void>
  broadcastAll (message: unknown): Promise<void>
}

type Handler = (conn: RoomConnection, message: any) => unknown

export function implementMessages<M extends MessageDefinitions> (registry: HandlerRegistry, senders: Senders, messages: M, handlers: Record<string, unknown>): ImplementedApi<M> {
  defineMessages(messages)
  if (handlers === null || typeof handlers !== 'object') throw new TypeError('fastify-ws-rooms: implement(messages, handlers): handlers must be an object with one handler per request type')
  const requests = (messages.requests ?? {}) as Record<string, { payload: ObjectSchema, result?: object }>
  // Every handler is checked before any type is registered: a refusal leaves nothing half done.
  for (const type of Object.keys(requests)) {
    if (typeof handlers[type] !== 'function') throw new TypeError(`fastify-ws-rooms: implement(messages, handlers): no handler for the request type "${type}"`)
  }
  for (const type of Object.keys(requests)) {
    const { payload, result } = requests[type]
    const handler = handlers[type] as Handler
    registry.register(type, payload, result === undefined ? withoutData(handler) : checkedHandler(registry, type, result, handler))
    if (result !== undefined) (registry.get(type) as RegisteredHandler).result = result
  }
  const frame = (type: string, payload: object): object => ({ ...payload, type })
  return {
    broadcast: async (room, type, payload, options) => { await senders.broadcast(room, frame(type, payload), options) },
    sendToUser: async (userId, type, payload) => { await senders.sendToUser(userId, frame(type, payload)) },
    broadcastAll: async (type, payload) => { await senders.broadcastAll(frame(type, payload)) }
  }
}

/** A request without a `result` is acked without data, whatever its handler returns (TypeScript lets a void function return a value). */
function withoutData (handler: Handler): Handler {
  return (conn, message) => {
    const value = handler(conn, message)
    return isPromise(value) ? value.then(() => undefined) : undefined
  }
}

/** `handler`, its return value (or what it resolves to) checked against `result` before the ack. */
function checkedHandler (registry: HandlerRegistry, type: string, result: object, handler: Handler): Handler {
  let compiled: ResultValidator | Promise<ResultValidator>
  try {
    compiled = compileResultSchema(result as Record<string | symbol, unknown>)
  } catch (err) {
    throw new TypeError(`fastify-ws-rooms: implement: requests.${type}.result could not be compiled: ${(err as Error)?.message ?? String(err)}`)
  }
  let validator: ResultValidator | undefined
  if (isPromise(compiled)) {
    registry.track(type, compiled.then((v) => { validator = v }))
  } else {
    validator = compiled
  }
  const check = (value: unknown): unknown => {
    // Thrown as a plain Error: the ack path answers internal_error and logs it with the type.
    if (validator === undefined) throw new Error(`the result schema of "${type}" is not compiled`)
    if (!validator.Check(value)) throw new Error(`the result of "${type}" fails its schema: ${validator.firstError(value)}`)
    return value
  }
  return (conn, message) => {
    const value = handler(conn, message)
    return isPromise(value) ? value.then(check) : check(value)
  }
}
