// The room broker behind `fastify.rooms`: local membership, fan-out to local members, and the
// node side of the adapter boundary. Every message is serialized once and framed once; the
// adapter only carries the same payload string to other nodes.
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type {
  AdapterNode, BroadcastOptions, ErrorCode, HandledMessage, MessageId, RoomConnection, RoomMember,
  RoomsAdapter, RoomsApi, RoomsStats
} from '../types/index.js'
import type { TObject } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import { ClosingSockets } from './closing-sockets.js'
import { Connection, type ConnectionHost } from './connection.js'
import { frameText } from './frame-writer.js'
import {
  ackFrame, BUILTIN_TYPES, compile, envelopeSchema, errorFrame, isValidRoomName, joinEventFrame, leaveEventFrame
} from './protocol.js'
import { InvalidHandlerError, InvalidRoomError, TooManyRoomsError, UnknownConnectionError } from './errors.js'
import type { RoomsParams } from './options.js'

export interface MessageHandler {
  check: TypeCheck<TObject>
  run: (conn: RoomConnection, message: any) => unknown
}

export class RoomBroker extends EventEmitter implements RoomsApi, AdapterNode, ConnectionHost {
  readonly nodeId = randomBytes(6).toString('hex')
  readonly log: FastifyBaseLogger
  readonly params: RoomsParams
  readonly maxBufferedBytes: number
  adapter!: RoomsAdapter
  /** Application message types from `handle()`, by type; null prototype so no frame reaches Object's keys. */
  readonly handlers: Record<string, MessageHandler> = Object.create(null)
  readonly connections = new Map<string, Connection>()
  /** Sockets admitted past the capacity checks and not yet closed, in total and by IP. */
  admittedSockets = 0
  readonly admittedPerIp = new Map<string, number>()

  messagesIn = 0
  messagesOut = 0
  rateLimited = 0
  rejectedUpgrades = 0
  slowConsumersClosed = 0
  dropped = 0

  /** Set once shutdown begins: new upgrades are turned away. */
  closing = false
  /** Connections the server is closing, until their socket is gone (some already left `connections`). */
  readonly closingSockets: ClosingSockets<Connection>

  private readonly roomMembers = new Map<string, Set<Connection>>()
  /** A user's connections on this node: most users have one, kept without a Set. */
  private readonly byUser = new Map<string, Connection | Set<Connection>>()
  private nextConnection = 0

  constructor (log: FastifyBaseLogger, params: RoomsParams) {
    super()
    this.log = log
    this.params = params
    this.maxBufferedBytes = params.maxBufferedBytes
    this.closingSockets = new ClosingSockets(params.closeTimeout)
  }

  // ---- connections ----

  newConnectionId (): string {
    return `${this.nodeId}-${(++this.nextConnection).toString(36)}`
  }

  /** Register an accepted connection (the caller has already sent the welcome frame). */
  /**
   * Count a socket against `maxConnections` / `maxConnectionsPerIp` from the handshake until the
   * socket itself closes: refused upgrades, upgrades still authenticating, and receivers closed
   * for being slow whose socket lingers all hold their slot, so none of them can be used to pass the limits.
   */
  admit (ip: string, socket: { once (event: 'close', listener: () => void): unknown }): void {
    this.admittedSockets++
    this.admittedPerIp.set(ip, (this.admittedPerIp.get(ip) ?? 0) + 1)
    socket.once('close', () => {
      this.admittedSockets--
      const left = (this.admittedPerIp.get(ip) ?? 1) - 1
      if (left <= 0) this.admittedPerIp.delete(ip)
      else this.admittedPerIp.set(ip, left)
    })
  }

  add (conn: Connection): void {
    this.connections.set(conn.id, conn)
    const userId = conn.user.id
    const mine = this.byUser.get(userId)
    if (mine === undefined) {
      this.byUser.set(userId, conn)
      this.adapterCall('subscribeUser', this.adapter.subscribeUser(userId))
    } else if (mine instanceof Set) {
      mine.add(conn)
    } else {
      this.byUser.set(userId, new Set([mine, conn]))
    }
    this.emitSafe('connect', conn)
  }

  closeStarted (conn: Connection): void {
    this.closingSockets.add(conn)
  }

  /** The socket is gone (closed, or cut). */
  socketClosed (conn: Connection, code: number): void {
    this.closingSockets.delete(conn)
    this.remove(conn, code)
  }

  /** The connection is over: leave every room (others get `leave`), forget the connection. */
  remove (conn: Connection, code: number): void {
    conn.open = false
    conn.dropBacklog()
    if (!this.connections.delete(conn.id)) return
    for (const room of conn.rooms) this.leaveLocal(conn, room)
    const userId = conn.user.id
    const mine = this.byUser.get(userId)
    if (mine === conn) {
      this.byUser.delete(userId)
      this.adapterCall('unsubscribeUser', this.adapter.unsubscribeUser(userId))
    } else if (mine instanceof Set) {
      mine.delete(conn)
      if (mine.size === 1) this.byUser.set(userId, mine.values().next().value as Connection)
    }
    this.emitSafe('disconnect', conn, code)
  }

  /** Close every connection with `code` (1001 on shutdown); cut the ones that have not closed after `timeoutMs`. */
  async closeAll (code: number, reason: string, timeoutMs: number): Promise<void> {
    this.closing = true
    // Also the sockets already closing (slow consumers cut with 1013 left `connections` at once):
    // the HTTP server would otherwise wait for them.
    const all = new Set<Connection>([...this.connections.values(), ...this.closingSockets.values()])
    const waiting = [...all].filter((conn) => conn.ws.readyState !== conn.ws.CLOSED)
    this.closingSockets.stop()
    if (waiting.length === 0) return
    await new Promise<void>((resolve) => {
      let remaining = waiting.length
      const timer = setTimeout(() => { for (const conn of waiting) conn.terminate() }, timeoutMs)
      const closed = (): void => {
        if (--remaining === 0) {
          clearTimeout(timer)
          resolve()
        }
      }
      for (const conn of waiting) {
        conn.ws.once('close', closed)
        conn.close(code, reason)
      }
    })
  }

  slowConsumer (conn: Connection): void {
    this.slowConsumersClosed++
    this.log.warn({ connectionId: conn.id, maxBufferedBytes: this.maxBufferedBytes }, 'closing a receiver that reads too slowly')
    // The close frame waits behind what is buffered (ws cuts the socket after 30 s without an answer);
    // the receiver leaves its rooms now, so the others hear of it and nothing more is queued.
    conn.close(1013, 'Receiver too slow')
    this.remove(conn, 1013)
  }

  // ---- joining and leaving ----

  /** `fastify.rooms.join`: the server decides, so `authorizeJoin` is not asked; the name rule and room limit hold. */
  async join (connectionId: string, room: string): Promise<void> {
    const code = await this.tryJoin(this.connectionOrThrow(connectionId), room, false)
    if (code === 'invalid_room') throw new InvalidRoomError(this.params.maxRoomNameLength)
    if (code === 'too_many_rooms') throw new TooManyRoomsError(this.params.maxRoomsPerConnection)
  }

  async leave (connectionId: string, room: string): Promise<void> {
    const conn = this.connectionOrThrow(connectionId)
    if (conn.rooms.has(room)) this.leaveLocal(conn, room)
  }

  /** A client's `leave`: refused with `not_in_room` when it is not a member. */
  clientLeave (conn: Connection, room: string): ErrorCode | undefined {
    if (!conn.rooms.has(room)) return 'not_in_room'
    this.leaveLocal(conn, room)
    return undefined
  }

  /**
   * Join `conn` to `room`: undefined once the join took effect (subscribed, so a message
   * published to the room from any node reaches it), or the error code refusing it. Answers
   * synchronously when nothing on the way is async (no `authorizeJoin`, a synchronous adapter),
   * so a join on one node costs no promise.
   */
  tryJoin (conn: Connection, room: string, authorize: boolean): ErrorCode | undefined | Promise<ErrorCode | undefined> {
    if (!isValidRoomName(room, this.params.maxRoomNameLength)) return 'invalid_room'
    if (conn.rooms.has(room)) return undefined
    if (conn.rooms.size >= this.params.maxRoomsPerConnection) return 'too_many_rooms'
    if (authorize && this.params.authorizeJoin !== undefined) return this.authorizeThenJoin(conn, room)
    return this.addMember(conn, room)
  }

  private async authorizeThenJoin (conn: Connection, room: string): Promise<ErrorCode | undefined> {
    let allowed: boolean
    try {
      allowed = await this.params.authorizeJoin!(conn.user, room, conn.request!) // retained whenever authorizeJoin is set
    } catch (err) {
      this.log.error({ err, connectionId: conn.id, room }, 'authorizeJoin threw')
      return 'internal_error'
    }
    if (allowed !== true) return 'forbidden'
    // The world may have moved while we waited.
    if (!conn.open || conn.rooms.has(room)) return undefined
    if (conn.rooms.size >= this.params.maxRoomsPerConnection) return 'too_many_rooms'
    return await this.addMember(conn, room)
  }

  private addMember (conn: Connection, room: string): undefined | Promise<undefined> {
    conn.rooms.add(room)
    // Until it is announced, the join is the connection's alone: a disconnect or leave meanwhile
    // undoes it silently (nothing was written for it yet, and nobody heard of it).
    ;(conn.joining ??= new Set()).add(room)
    let local = this.roomMembers.get(room)
    const first = local === undefined
    if (local === undefined) {
      local = new Set()
      this.roomMembers.set(room, local)
    }
    local.add(conn)
    const subscribed = first ? this.adapterStep(this.adapter.subscribeRoom, room) : undefined
    if (subscribed !== undefined) return subscribed.then(() => this.registerMember(conn, room))
    return this.registerMember(conn, room)
  }

  /** Still the same join: the connection is open, in the room, and the join not undone meanwhile. */
  private stillJoining (conn: Connection, room: string): boolean {
    return conn.open && conn.joining?.has(room) === true
  }

  private registerMember (conn: Connection, room: string): undefined | Promise<undefined> {
    // The subscribe took a round trip: a join whose connection closed (or left) meanwhile writes nothing.
    if (!this.stillJoining(conn, room)) return undefined
    const registered = this.adapterStep(this.adapter.addPresence, room, { connectionId: conn.id, user: conn.user })
    if (registered !== undefined) {
      return registered.then(() => {
        // Undone while the write was in flight: the removal already ran, so take the entry out again.
        if (!this.stillJoining(conn, room)) this.adapterCall('removePresence', this.adapter.removePresence(room, conn.id))
        return this.announceJoin(conn, room)
      })
    }
    return this.announceJoin(conn, room)
  }

  private announceJoin (conn: Connection, room: string): undefined {
    if (!this.stillJoining(conn, room)) return undefined
    conn.joining!.delete(room)
    if (conn.joining!.size === 0) conn.joining = null
    this.publish(room, joinEventFrame(room, conn.userJson))
    this.emitSafe('join', conn, room)
    return undefined
  }

  /**
   * One adapter step of a join: undefined when it was synchronous, else a promise that always
   * resolves. A failure is logged and the join goes on: local delivery works without the
   * adapter, which resubscribes when it recovers.
   */
  private adapterStep<A extends unknown[]> (step: (this: RoomsAdapter, ...args: A) => void | Promise<void>, ...args: A): Promise<void> | undefined {
    let result: void | Promise<void>
    try {
      result = step.apply(this.adapter, args)
    } catch (err) {
      this.log.error({ err, room: args[0] }, 'rooms adapter could not subscribe or register presence')
      return undefined
    }
    if (result === undefined || typeof (result as Promise<void>).then !== 'function') return undefined
    return (result as Promise<void>).catch((err: unknown) => {
      this.log.error({ err, room: args[0] }, 'rooms adapter could not subscribe or register presence')
    })
  }

  /** Take `conn` out of `room` and tell the remaining members, on every node. */
  private leaveLocal (conn: Connection, room: string): void {
    conn.rooms.delete(room)
    const local = this.roomMembers.get(room)
    if (local !== undefined) {
      local.delete(conn)
      if (local.size === 0) {
        this.roomMembers.delete(room)
        this.adapterCall('unsubscribeRoom', this.adapter.unsubscribeRoom(room))
      }
    }
    if (conn.joining?.delete(room) === true) {
      // A join not announced yet: undone without a trace (its presence write will not happen).
      if (conn.joining.size === 0) conn.joining = null
      return
    }
    this.adapterCall('removePresence', this.adapter.removePresence(room, conn.id))
    this.publish(room, leaveEventFrame(room, conn.userJson))
    this.emitSafe('leave', conn, room)
  }

  private connectionOrThrow (connectionId: string): Connection {
    const conn = this.connections.get(connectionId)
    if (conn === undefined || !conn.open) throw new UnknownConnectionError(String(connectionId))
    return conn
  }

  // ---- fan-out ----

  /** Deliver to local members and hand the same payload to the adapter for the other nodes. */
  publish (room: string, payload: string, except?: string): Promise<void> {
    this.deliverToRoom(room, payload, except)
    return this.adapterCall('publishToRoom', this.adapter.publishToRoom(room, payload, except))
  }

  deliverToRoom (room: string, payload: string, except?: string): void {
    const local = this.roomMembers.get(room)
    if (local === undefined) return
    let frame: Buffer | undefined
    for (const conn of local) {
      if (conn.id === except) continue
      frame ??= frameText(payload)
      conn.deliver(frame, payload)
    }
  }

  deliverToUser (userId: string, payload: string): void {
    const mine = this.byUser.get(userId)
    if (mine === undefined) return
    const frame = frameText(payload)
    if (mine instanceof Set) for (const conn of mine) conn.deliver(frame, payload)
    else mine.deliver(frame, payload)
  }

  deliverToAll (payload: string): void {
    if (this.connections.size === 0) return
    const frame = frameText(payload)
    for (const conn of this.connections.values()) conn.deliver(frame, payload)
  }

  replyError (conn: Connection, code: ErrorCode, text: string, id: MessageId | undefined): void {
    conn.sendPayload(errorFrame(code, text, id))
  }

  replyAck (conn: Connection, id: MessageId | undefined, data?: unknown): void {
    if (id !== undefined) conn.sendPayload(ackFrame(id, data))
  }

  // ---- fastify.rooms ----

  async broadcast (room: string, message: unknown, options?: BroadcastOptions): Promise<void> {
    await this.publish(room, serialize(message), options?.except)
  }

  async broadcastAll (message: unknown): Promise<void> {
    const payload = serialize(message)
    this.deliverToAll(payload)
    await this.adapterCall('publishToAll', this.adapter.publishToAll(payload))
  }

  async sendToUser (userId: string, message: unknown): Promise<void> {
    const payload = serialize(message)
    this.deliverToUser(userId, payload)
    await this.adapterCall('publishToUser', this.adapter.publishToUser(userId, payload))
  }

  async members (room: string): Promise<RoomMember[]> {
    return await this.adapter.members(room)
  }

  rooms (): Array<{ room: string, size: number }> {
    const list: Array<{ room: string, size: number }> = []
    for (const [room, local] of this.roomMembers) list.push({ room, size: local.size })
    return list
  }

  stats (): RoomsStats {
    return {
      connections: this.connections.size,
      rooms: this.roomMembers.size,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      rateLimited: this.rateLimited,
      rejectedUpgrades: this.rejectedUpgrades,
      slowConsumersClosed: this.slowConsumersClosed,
      dropped: this.dropped
    }
  }

  connection (connectionId: string): RoomConnection | undefined {
    return this.connections.get(connectionId)
  }

  handle<S extends TObject> (type: string, schema: S, handler: (conn: RoomConnection, message: HandledMessage<S>) => unknown): void {
    if (typeof type !== 'string' || type.length === 0) throw new InvalidHandlerError(String(type), 'the type must be a non-empty string')
    if (BUILTIN_TYPES.has(type)) throw new InvalidHandlerError(type, 'this type is built in')
    if (this.handlers[type] !== undefined) throw new InvalidHandlerError(type, 'a handler for this type exists already')
    if (schema === null || typeof schema !== 'object' || schema.type !== 'object' || typeof schema.properties !== 'object') {
      throw new InvalidHandlerError(type, 'the schema must be a TypeBox object schema (Type.Object)')
    }
    if (typeof handler !== 'function') throw new InvalidHandlerError(type, 'the handler must be a function')
    this.handlers[type] = { check: compile(envelopeSchema(type, schema)), run: handler }
  }

  // ---- AdapterNode ----

  localMembers (room: string): RoomMember[] {
    const local = this.roomMembers.get(room)
    if (local === undefined) return []
    return Array.from(local, (conn) => ({ connectionId: conn.id, user: conn.user }))
  }

  localRooms (): string[] {
    return [...this.roomMembers.keys()]
  }

  countDropped (count = 1): void {
    this.dropped += count
  }

  // ---- helpers ----

  /** Await an adapter call that must not fail the caller: a rejection is logged and counted as dropped. */
  private adapterCall (what: string, result: void | Promise<void>): Promise<void> {
    if (result === undefined || typeof (result as Promise<void>).then !== 'function') return RESOLVED
    return (result as Promise<void>).catch((err: unknown) => {
      if (what.startsWith('publish')) this.dropped++
      this.log.error({ err }, `rooms adapter ${what} failed`)
    })
  }

  /** Listeners are user code: one that throws must not break the broker's bookkeeping. */
  private emitSafe (event: string, ...args: unknown[]): void {
    if (this.listenerCount(event) === 0) return
    try {
      this.emit(event, ...args)
    } catch (err) {
      this.log.error({ err, event }, 'a fastify.rooms event listener threw')
    }
  }
}

const RESOLVED = Promise.resolve()

function serialize (message: unknown): string {
  const payload = JSON.stringify(message)
  if (typeof payload !== 'string') throw new TypeError('fastify-ws-rooms: the message must be serializable to JSON')
  return payload
}
