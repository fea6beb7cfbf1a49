// `fastify.rooms`: every documented method, with its argument checks, over the node's parts. The
// facade holds them in #private fields and has no other member, so from JavaScript nothing but the
// documented API is reachable through it (no delivery internals, no adapter, no EventEmitter).
import type {
  BroadcastOptions, DisconnectOptions, DrainOptions, HandledMessage, ImplementedApi, MessageDefinitions, MessageHandlers, ObjectSchema, RoomConnection, RoomHistory, RoomMember, RoomsApi, RoomsEventName,
  RoomsEvents as Listeners, RoomsStats
} from '../types/index.js'
import { checkDisconnect, checkHistoryOptions, checkMembersLimit, checkRoomArgument, checkUserId } from './api-arguments.js'
import type { ClusterLink } from './cluster-link.js'
import { asyncApiDocument, type AsyncApiInfo } from './asyncapi.js'
import { implementMessages } from './commands/implement.js'
import type { HandlerRegistry } from './commands/registry.js'
import type { Connection } from './connection.js'
import { NoHistoryError, unavailableFrom, UnknownConnectionError } from './errors.js'
import type { RoomsEvents } from './events.js'
import type { Hub } from './hub.js'
import type { MembersQuery } from './members-query.js'
import type { RoomsParams } from './options.js'
import type { Publisher } from './publish.js'
import { refusalError } from './refusals.js'
import { tellAdded } from './room-joins.js'
import { serialize, serializeHistoryMessage } from './serialize.js'
import type { Admission } from './admission.js'
import type { Shutdown } from './shutdown.js'
import { checkDrainOptions, type Drain } from './drain.js'
import { type Counters, statsOf } from './stats.js'

/** The parts of one node behind fastify.rooms (its state; the options are given beside them). */
export interface NodeParts {
  hub: Hub
  link: ClusterLink
  publisher: Publisher
  members: MembersQuery
  handlers: HandlerRegistry
  events: RoomsEvents
  counters: Counters
  admission: Admission
  shutdown: Shutdown
  drain: Drain
}

const partsOf = new WeakMap<RoomsApi, NodeParts>()

/**
 * The parts behind a `fastify.rooms`, for tests that look inside (the soak's leftover check).
 * Not reachable from the package: its exports map has no path to this file.
 */
export function internalsOf (rooms: RoomsApi): NodeParts | undefined {
  return partsOf.get(rooms)
}

export class RoomsFacade implements RoomsApi {
  readonly #hub: Hub
  readonly #link: ClusterLink
  readonly #publisher: Publisher
  readonly #members: MembersQuery
  readonly #handlers: HandlerRegistry
  readonly #events: RoomsEvents
  readonly #counters: Counters
  readonly #params: RoomsParams
  readonly #drain: Drain

  constructor (parts: NodeParts, params: RoomsParams) {
    this.#hub = parts.hub
    this.#link = parts.link
    this.#publisher = parts.publisher
    this.#members = parts.members
    this.#handlers = parts.handlers
    this.#events = parts.events
    this.#counters = parts.counters
    this.#params = params
    this.#drain = parts.drain
    partsOf.set(this, parts)
  }

  get nodeId (): string {
    return this.#hub.nodeId
  }

  async broadcast (room: string, message: unknown, options?: BroadcastOptions): Promise<void> {
    // No connection id holds a NUL, which separates the fields of a message between nodes.
    let except = options?.except
    if (typeof except === 'string' && except.includes('\u0000')) except = undefined
    if (this.#hub.isHistoryRoom(room)) {
      await this.#publisher.toHistoryRoom(room, serializeHistoryMessage(room, message), except)
      return
    }
    await this.#publisher.toRoom(room, serialize(message), except)
  }

  async broadcastAll (message: unknown): Promise<void> {
    await this.#publisher.toAll(serialize(message))
  }

  async sendToUser (userId: string, message: unknown): Promise<void> {
    await this.#publisher.toUser(userId, serialize(message))
  }

  /** The server decides, so `authorizeJoin` is not asked; the name rule and room limit hold. The connection is told `added`. */
  async join (connectionId: string, room: string): Promise<void> {
    const conn = connectionOrThrow(this.#hub, connectionId)
    const refusal = await this.#hub.join(conn, room, { authorize: false, ack: tellAdded(conn, room) })
    if (refusal !== undefined) throw refusalError(refusal, this.#params)
  }

  /** The connection is told `removed`. */
  async leave (connectionId: string, room: string): Promise<void> {
    this.#hub.leave(connectionOrThrow(this.#hub, connectionId), room, { tell: true })
  }

  async members (room: string, options?: { limit?: number }): Promise<RoomMember[]> {
    const limit = options?.limit
    checkMembersLimit(limit)
    return await this.#members.members(room, limit)
  }

  async history (room: string, options?: { after?: number, limit?: number }): Promise<RoomHistory> {
    if (typeof room !== 'string') throw new TypeError('fastify-ws-rooms: history(room): room must be a string')
    if (!this.#hub.isHistoryRoom(room)) throw new NoHistoryError(room)
    const { after, limit } = checkHistoryOptions(options)
    let page
    try {
      page = await this.#link.history.read(room, after, limit)
    } catch (err) {
      throw unavailableFrom(err)
    }
    return { epoch: page.epoch, offset: page.offset, messages: page.messages.map((m) => JSON.parse(m.payload)) }
  }

  async disconnectUser (userId: string, options?: DisconnectOptions): Promise<void> {
    checkUserId('disconnectUser', userId)
    await this.#publisher.toUserConnections(userId, checkDisconnect(options))
  }

  async joinUser (userId: string, room: string): Promise<void> {
    checkUserId('joinUser', userId)
    checkRoomArgument('joinUser', room, this.#params.maxRoomNameLength)
    await this.#publisher.toUserConnections(userId, { op: 'join', room })
  }

  async leaveUser (userId: string, room: string): Promise<void> {
    checkUserId('leaveUser', userId)
    checkRoomArgument('leaveUser', room, this.#params.maxRoomNameLength)
    await this.#publisher.toUserConnections(userId, { op: 'leave', room })
  }

  /** Send this node's clients elsewhere over `overMs` (lib/drain.ts); a drain under way is not restarted. */
  async drain (options?: DrainOptions): Promise<void> {
    await this.#drain.start(checkDrainOptions(options))
  }

  rooms (): Array<{ room: string, size: number }> {
    return this.#hub.roomList()
  }

  stats (): RoomsStats {
    return statsOf(this.#counters, this.#hub.connectionCount, this.#hub.roomCount)
  }

  connection (connectionId: string): RoomConnection | undefined {
    return this.#hub.connection(connectionId)
  }

  handle<S extends ObjectSchema> (type: string, schema: S, handler: (conn: RoomConnection, message: HandledMessage<S>) => unknown): void {
    this.#handlers.register(type, schema, handler)
  }

  implement<M extends MessageDefinitions> (messages: M, handlers: MessageHandlers<M>): ImplementedApi<M> {
    return implementMessages(this.#handlers, this, messages, handlers)
  }

  asyncapi (info?: AsyncApiInfo): Record<string, unknown> {
    return asyncApiDocument(this.#params.path, this.#handlers, info)
  }

  on<E extends RoomsEventName> (event: E, listener: Listeners[E]): this {
    this.#events.on(event, listener)
    return this
  }

  off<E extends RoomsEventName> (event: E, listener: Listeners[E]): this {
    this.#events.off(event, listener)
    return this
  }
}

/** An open connection of this node, or UnknownConnectionError. */
function connectionOrThrow (hub: Hub, connectionId: string): Connection {
  const conn = hub.connection(connectionId)
  if (conn === undefined || !conn.open) throw new UnknownConnectionError(String(connectionId))
  return conn
}
