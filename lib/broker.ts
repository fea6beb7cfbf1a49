// The room broker behind `fastify.rooms`: local membership, fan-out to local members, and the
// node side of the adapter boundary. Every message is serialized once and framed once; the
// adapter only carries the same payload string to other nodes. Presence (presence.ts), history
// streams (history/), session expiry and user commands live in their own modules.
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type {
  AdapterNode, BroadcastOptions, DisconnectOptions, ErrorCode, HistoryEntry, HistoryLimits, MessageId, ObjectSchema,
  PresenceDiff, RoomConnection, RoomHistory, RoomMember, RoomsAdapter, RoomsApi, RoomsHistory, RoomsStats, StreamPosition,
  UserCommand
} from '../types/index.js'
import { ClosingSockets } from './closing-sockets.js'
import { Connection, type ConnectionHost } from './connection.js'
import { frameText, type TickBatch, tickBatch } from './frame-writer.js'
import { MemoryHistory } from './history/memory-history.js'
import { RoomStream, type StreamHost, type StreamJoinAck } from './history/room-stream.js'
import { PresenceBoard, type PresenceHost } from './presence.js'
import { compileHandlerSchema, type FrameValidator } from './handler-schema.js'
import { ackFrame, addedFrame, BUILTIN_TYPES, errorFrame, isValidRoomName, removedFrame } from './protocol.js'
import { Room } from './room.js'
import { SessionExpiry } from './session-expiry.js'
import { applyUserCommand, checkDisconnect, checkRoomArgument, checkUserId } from './user-commands.js'
import {
  InvalidHandlerError, InvalidRoomError, NoHistoryError, TooManyRoomsError, UnavailableError, UnknownConnectionError
} from './errors.js'
import type { RoomsParams } from './options.js'
import { isPromise, RESOLVED } from './async.js'

export interface MessageHandler {
  /** Undefined until the schema is compiled (a typebox 1.x schema waits for its compiler's import). */
  check: FrameValidator | undefined
  /** While `check` is undefined: settles when it is set, or the handler was dropped (its schema failed). */
  compiled?: Promise<unknown>
  run: (conn: RoomConnection, message: any) => unknown
}

/**
 * What a join answers: undefined (joined), an error code (refused), or the ack's data (a history
 * room's position, §9). Synchronous when nothing on the way is async.
 */
export type JoinResult = undefined | ErrorCode | StreamJoinAck

/** How long (ms) a room's answer to the `members` request is reused on this node; see membersOf. */
const MEMBERS_ANSWER_MS = 1000

export interface MembersAnswer { size: number, members: RoomMember[] }

/** A close code (4001) and reason for connections whose session expired. */
const EXPIRED = { code: 4001, reason: 'Token expired' }
const HISTORY_LOST = 'History lost: rejoin to recover'

export class RoomBroker extends EventEmitter implements RoomsApi, AdapterNode, ConnectionHost, PresenceHost, StreamHost {
  readonly nodeId = randomBytes(6).toString('hex')
  readonly log: FastifyBaseLogger
  readonly params: RoomsParams
  readonly maxBufferedBytes: number
  adapter!: RoomsAdapter
  /** Where history rooms are ordered and kept: the adapter's, or this node's memory. */
  historyStore!: RoomsHistory
  readonly historyLimits: HistoryLimits | undefined
  /** Application message types from `handle()`, by type; null prototype so no frame reaches Object's keys. */
  readonly handlers: Record<string, MessageHandler> = Object.create(null)
  /** Schemas still compiling (typebox 1.x's compiler being imported). */
  readonly #compiling = new Set<Promise<unknown>>()
  /** The first schema that failed to compile before the server was ready: `ready()` fails with it. */
  #schemaError: Error | undefined
  /** Set once the server is ready: a schema that fails to compile later can only be logged. */
  #schemasChecked = false
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
  readonly presence: PresenceBoard
  readonly expiry: SessionExpiry<Connection>

  private readonly roomsByName = new Map<string, Room>()
  /** A user's connections on this node: most users have one, kept without a Set. */
  private readonly byUser = new Map<string, Connection | Set<Connection>>()
  private nextConnection = 0
  private memoryHistory: MemoryHistory | undefined
  /** Server-side joins under way, by connection and room: a client's join of the same room waits for them. */
  private readonly serverJoins = new WeakMap<Connection, Map<string, ServerJoin>>()

  constructor (log: FastifyBaseLogger, params: RoomsParams) {
    super()
    this.log = log
    this.params = params
    this.maxBufferedBytes = params.maxBufferedBytes
    this.historyLimits = params.history === undefined ? undefined : { size: params.history.size, ttlMs: params.history.ttlMs }
    this.closingSockets = new ClosingSockets(params.closeTimeout)
    this.presence = new PresenceBoard(this, params)
    this.expiry = new SessionExpiry((conn) => conn.close(EXPIRED.code, EXPIRED.reason))
  }

  /** Called once the adapter is set and initialised: histories go to the adapter when it orders them. */
  start (): void {
    if (this.historyLimits === undefined) return
    if (this.adapter.history !== undefined) {
      this.historyStore = this.adapter.history
      return
    }
    this.memoryHistory = new MemoryHistory(this.historyLimits, this)
    this.historyStore = this.memoryHistory
  }

  /** Shutdown, after every connection is gone: stop the timers, tell the other nodes what is pending. */
  stop (): void {
    this.presence.close()
    this.expiry.stop()
    this.closingSockets.stop()
    this.memoryHistory?.close()
  }

  // ---- connections ----

  newConnectionId (): string {
    return `${this.nodeId}-${(++this.nextConnection).toString(36)}`
  }

  /**
   * Count a request against `maxConnections` / `maxConnectionsPerIp` from the handshake until
   * `over` closes: an upgrade's socket (refused upgrades, upgrades still authenticating, and
   * receivers closed for being slow whose socket lingers all hold their slot, so none of them can
   * be used to pass the limits), or a plain request's response.
   */
  admit (ip: string, over: { once (event: 'close', listener: () => void): unknown }): void {
    this.admittedSockets++
    this.admittedPerIp.set(ip, (this.admittedPerIp.get(ip) ?? 0) + 1)
    over.once('close', () => {
      this.admittedSockets--
      const left = (this.admittedPerIp.get(ip) ?? 1) - 1
      if (left <= 0) this.admittedPerIp.delete(ip)
      else this.admittedPerIp.set(ip, left)
    })
  }

  /** Register an accepted connection (the caller has already sent the welcome frame). */
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
    if (conn.expiresAt !== undefined) this.expiry.add(conn)
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
    conn.stop()
    if (!this.connections.delete(conn.id)) return
    this.expiry.delete(conn)
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

  /** This node's connections of `userId`. */
  connectionsOf (userId: string): Connection[] {
    const mine = this.byUser.get(userId)
    if (mine === undefined) return []
    return mine instanceof Set ? [...mine] : [mine]
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
    // The close frame waits behind what is buffered (it is cut after closeTimeout); the receiver
    // leaves its rooms now, so the others hear of it and nothing more is queued.
    conn.close(1013, 'Receiver too slow')
    this.remove(conn, 1013)
  }

  // ---- joining and leaving ----

  /** `fastify.rooms.join`: the server decides, so `authorizeJoin` is not asked; the name rule and room limit hold. */
  async join (connectionId: string, room: string): Promise<void> {
    const conn = this.connectionOrThrow(connectionId)
    this.throwIfRefused(await this.serverJoin(conn, room))
  }

  throwIfRefused (result: JoinResult): void {
    if (result === 'invalid_room') throw new InvalidRoomError(this.params.maxRoomNameLength)
    if (result === 'too_many_rooms') throw new TooManyRoomsError(this.params.maxRoomsPerConnection)
    if (result === 'unavailable') throw new UnavailableError('the history of this room cannot be read now')
  }

  async leave (connectionId: string, room: string): Promise<void> {
    this.serverLeave(this.connectionOrThrow(connectionId), room)
  }

  /**
   * A join the server decided (`fastify.rooms.join`, `joinUser`): once it took effect the
   * connection gets `added`, in a history room with the position its live messages start after
   * (what a join's ack would say), so the client can recover the room after a reconnect. A room
   * the connection is already in (or joining) is left as it is, and nothing is sent.
   */
  serverJoin (conn: Connection, room: string): Promise<JoinResult> {
    if (conn.rooms.has(room)) return RESOLVED_JOIN
    const joining = this.tryJoin(conn, room, false)
    if (!isPromise(joining)) return Promise.resolve(this.joinedByServer(conn, room, joining))
    let underWay = this.serverJoins.get(conn)
    if (underWay === undefined) this.serverJoins.set(conn, underWay = new Map())
    const joins = underWay
    const entry: ServerJoin = { done: RESOLVED_JOIN, resumed: false }
    const done = (): void => {
      if (joins.get(room) === entry) joins.delete(room)
    }
    entry.done = joining.then(
      (result) => { done(); return this.joinedByServer(conn, room, result, entry.resumed) },
      (err: unknown) => { done(); throw err }
    )
    joins.set(room, entry)
    return entry.done
  }

  /**
   * `resumed`: the client's own join with `since` waits on this one; it takes the live flow over
   * (RoomStream.resume), so the flow is not started here.
   */
  private joinedByServer (conn: Connection, room: string, result: JoinResult, resumed = false): JoinResult {
    if (typeof result === 'string') return result
    // Undone before it took effect (closed, or taken out again): the connection was never told, so nothing is owed.
    if (!conn.open || !conn.rooms.has(room) || conn.joining?.has(room) === true) return result
    const stream = this.roomsByName.get(room)?.stream
    if (stream != null && result === undefined) return result // a history join that completes always has a position
    conn.sendPayload(addedFrame(room, result))
    if (stream != null && result !== undefined) stream.markAdded(conn, result.offset)
    if (!resumed || stream == null) this.activateJoin(conn, room)
    return result
  }

  /**
   * A leave the server decided (`fastify.rooms.leave`, `leaveUser`): the connection gets `removed`.
   * A join of its own still under way is undone; it hears `removed` right after that join's ack
   * (see activateJoin), so it never takes the ack for a membership it no longer has.
   */
  serverLeave (conn: Connection, room: string): void {
    if (!conn.open || !conn.rooms.has(room)) return
    const announced = conn.joining?.has(room) !== true
    this.leaveLocal(conn, room)
    if (announced) conn.sendPayload(removedFrame(room))
  }

  /** A client's `leave`: refused with `not_in_room` when it is not a member. */
  clientLeave (conn: Connection, room: string): ErrorCode | undefined {
    if (!conn.rooms.has(room)) return 'not_in_room'
    this.leaveLocal(conn, room)
    return undefined
  }

  /**
   * Join `conn` to `room`: once the join took effect (subscribed, so a message published to the
   * room from any node reaches it; in a history room, caught up), its ack data (or undefined), or
   * the error code refusing it. Answers synchronously when nothing on the way is async (no
   * `authorizeJoin`, a synchronous adapter), so a join on one node costs no promise. The caller
   * sends the ack, then calls `activateJoin`.
   */
  tryJoin (conn: Connection, room: string, authorize: boolean, since?: StreamPosition): JoinResult | Promise<JoinResult> {
    if (!isValidRoomName(room, this.params.maxRoomNameLength)) return 'invalid_room'
    if (conn.rooms.has(room)) return this.alreadyJoined(conn, room, authorize, since)
    if (conn.rooms.size >= this.params.maxRoomsPerConnection) return 'too_many_rooms'
    if (authorize && this.params.authorizeJoin !== undefined) return this.authorizeThenJoin(conn, room, since)
    return this.addMember(conn, room, since)
  }

  /**
   * A join of a room already joined is a no-op that still acks; in a history room with its current
   * position. With `since`, from a connection the server joined to the room (a client rejoining
   * after a reconnect while a `connect` listener or joinUser joined it again): once that join is
   * done, what was missed is recovered as a fresh join would (see RoomStream.resume).
   */
  private alreadyJoined (conn: Connection, name: string, authorize: boolean, since: StreamPosition | undefined): JoinResult | Promise<JoinResult> {
    if (since !== undefined) {
      const underWay = this.serverJoins.get(conn)?.get(name)
      if (underWay !== undefined) {
        underWay.resumed = true
        return underWay.done.then(
          () => conn.open ? this.tryJoin(conn, name, authorize, since) : undefined,
          () => conn.open ? this.tryJoin(conn, name, authorize, since) : undefined
        )
      }
      const resumed = conn.joining?.has(name) === true ? undefined : this.roomsByName.get(name)?.stream?.resume(conn, since)
      if (resumed !== undefined) {
        if (!isPromise(resumed)) return resumed
        return resumed.catch((err: unknown) => {
          this.log.error({ err, connectionId: conn.id, room: name }, 'a history room\'s missed messages could not be read; the rejoin is refused, the member stays')
          return 'unavailable'
        })
      }
    }
    const stream = this.roomsByName.get(name)?.stream
    if (stream === null || stream === undefined || stream.epoch === undefined) return undefined
    // The member got every message live; a `since` it sends cannot be checked against that, so no replay is claimed.
    return since === undefined
      ? { epoch: stream.epoch, offset: stream.offset }
      : { recovered: false, epoch: stream.epoch, offset: stream.offset }
  }

  private async authorizeThenJoin (conn: Connection, room: string, since: StreamPosition | undefined): Promise<JoinResult> {
    let allowed: boolean
    try {
      allowed = await this.params.authorizeJoin!(conn.user, room, conn.request!) // retained whenever authorizeJoin is set
    } catch (err) {
      this.log.error({ err, connectionId: conn.id, room }, 'authorizeJoin threw')
      return 'internal_error'
    }
    if (allowed !== true) return 'forbidden'
    // The world may have moved while we waited.
    if (!conn.open) return undefined
    if (conn.rooms.has(room)) return await this.alreadyJoined(conn, room, false, since)
    if (conn.rooms.size >= this.params.maxRoomsPerConnection) return 'too_many_rooms'
    return await this.addMember(conn, room, since)
  }

  private addMember (conn: Connection, name: string, since: StreamPosition | undefined): JoinResult | Promise<JoinResult> {
    conn.rooms.add(name)
    // Until it is announced, the join is the connection's alone: a disconnect or leave meanwhile
    // undoes it silently (nothing was written for it yet, and nobody heard of it).
    ;(conn.joining ??= new Set()).add(name)
    let room = this.roomsByName.get(name)
    const first = room === undefined
    if (room === undefined) {
      room = new Room(name)
      if (this.historyLimits !== undefined && this.isHistoryRoom(name)) room.stream = new RoomStream(room, this)
      this.roomsByName.set(name, room)
    }
    room.members.add(conn)
    const subscribed = first ? this.adapterStep(this.adapter.subscribeRoom, name) : undefined
    const joined = room
    if (subscribed !== undefined) return subscribed.then(() => this.catchUp(conn, joined, since))
    return this.catchUp(conn, room, since)
  }

  /** Still the same join: the connection is open, in the room, and the join not undone meanwhile. */
  private stillJoining (conn: Connection, room: string): boolean {
    return conn.open && conn.joining?.has(room) === true
  }

  /** A history room: read the position (and with `since`, what was missed) before anything is announced. */
  private catchUp (conn: Connection, room: Room, since: StreamPosition | undefined): JoinResult | Promise<JoinResult> {
    // The subscribe took a round trip: a join whose connection closed (or left) meanwhile does nothing more.
    if (!this.stillJoining(conn, room.name)) return undefined
    const stream = room.stream
    if (stream === null) return this.registerMember(conn, room, undefined)
    let ack: StreamJoinAck | Promise<StreamJoinAck>
    try {
      ack = stream.join(conn, since)
    } catch (err) {
      return this.historyJoinFailed(conn, room.name, err)
    }
    if (!isPromise(ack)) return this.registerMember(conn, room, ack)
    return ack.then(
      (data) => this.stillJoining(conn, room.name) ? this.registerMember(conn, room, data) : undefined,
      (err: unknown) => this.historyJoinFailed(conn, room.name, err)
    )
  }

  private historyJoinFailed (conn: Connection, room: string, err: unknown): ErrorCode {
    this.log.error({ err, connectionId: conn.id, room }, 'a history room\'s position could not be read; the join is refused')
    if (conn.rooms.has(room)) this.leaveLocal(conn, room)
    return 'unavailable'
  }

  private registerMember (conn: Connection, room: Room, data: StreamJoinAck | undefined): JoinResult | Promise<JoinResult> {
    const registered = this.adapterStep(this.adapter.addPresence, room.name, { connectionId: conn.id, user: conn.user })
    if (registered !== undefined) {
      return registered.then(() => {
        // Undone while the write was in flight: the removal already ran, so take the entry out again.
        if (!this.stillJoining(conn, room.name)) this.adapterCall('removePresence', this.adapter.removePresence(room.name, conn.id))
        return this.announceJoin(conn, room, data)
      })
    }
    return this.announceJoin(conn, room, data)
  }

  private announceJoin (conn: Connection, room: Room, data: StreamJoinAck | undefined): JoinResult {
    if (!this.stillJoining(conn, room.name)) return undefined
    conn.joining!.delete(room.name)
    if (conn.joining!.size === 0) conn.joining = null
    room.membersAnswer = undefined
    this.presence.joined(room, conn)
    this.emitSafe('join', conn, room.name)
    return data
  }

  /**
   * The join's ack (or `added`) is out: a history room's joiner now gets what arrived meanwhile,
   * then the live flow. A join that a server-side leave undid while it was under way is followed
   * by `removed`, so the client does not keep a room it is not in.
   */
  activateJoin (conn: Connection, room: string): void {
    if (conn.open && !conn.rooms.has(room)) {
      conn.sendPayload(removedFrame(room))
      return
    }
    this.roomsByName.get(room)?.stream?.activate(conn)
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
  leaveLocal (conn: Connection, name: string): void {
    conn.rooms.delete(name)
    // A join not announced yet is undone without a trace (its presence write will not happen).
    const announced = conn.joining?.delete(name) !== true
    if (conn.joining?.size === 0) conn.joining = null
    const room = this.roomsByName.get(name)
    if (room !== undefined) {
      room.members.delete(conn)
      room.stream?.leave(conn)
      if (announced) {
        room.membersAnswer = undefined
        this.presence.left(room, conn)
      }
      if (room.members.size === 0) {
        this.roomsByName.delete(name)
        this.adapterCall('unsubscribeRoom', this.adapter.unsubscribeRoom(name))
      }
    }
    if (!announced) return
    this.adapterCall('removePresence', this.adapter.removePresence(name, conn.id))
    this.emitSafe('leave', conn, name)
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

  /**
   * A message to a history room: the history gives it the room's next offset and delivers it to
   * every node (this one included) in that order. Rejects with UnavailableError when it cannot.
   */
  publishToHistory (room: string, payload: string, except?: string): { epoch: string, offset: number } | Promise<{ epoch: string, offset: number }> {
    const head = payload.slice(0, -1)
    const sep = payload.length === 2 ? '' : ','
    let published: { epoch: string, offset: number } | Promise<{ epoch: string, offset: number }>
    try {
      published = this.historyStore.publish(room, head, sep, except)
    } catch (err) {
      throw new UnavailableError(String((err as Error)?.message ?? err), { cause: err })
    }
    if (!isPromise(published)) return published
    return published.catch((err: unknown) => {
      throw new UnavailableError(String((err as Error)?.message ?? err), { cause: err })
    })
  }

  deliverToRoom (room: string, payload: string, except?: string): void {
    const local = this.roomsByName.get(room)?.members
    if (local === undefined) return
    // Framed once, added to the room's frames of this tick; its members' writes share them.
    let batch: TickBatch | undefined
    let index = 0
    for (const conn of local) {
      if (conn.id === except) continue
      if (batch === undefined) {
        batch = tickBatch(local)
        index = batch.add(frameText(payload))
      }
      conn.deliverBatched(batch, index, payload)
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
    // No connection id holds a NUL, which separates the fields of a message between nodes.
    if (typeof options?.except === 'string' && options.except.includes('\u0000')) options = { ...options, except: undefined }
    if (this.historyLimits !== undefined && this.isHistoryRoom(room)) {
      await this.publishToHistory(room, serializeHistoryMessage(room, message), options?.except)
      return
    }
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

  async members (room: string, options?: { limit?: number }): Promise<RoomMember[]> {
    const limit = options?.limit
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new TypeError(`fastify-ws-rooms: members(room, { limit }): limit must be an integer >= 0, got ${String(limit)}`)
    }
    const members = await this.adapter.members(room, limit)
    return limit !== undefined && members.length > limit ? members.slice(0, limit) : members
  }

  /**
   * The `members` request (§10): at most `membersLimit` members, and the room's size across nodes.
   * One answer per room is reused on this node for MEMBERS_ANSWER_MS, so the members asking at
   * about the same time cost one lookup (with Redis, two scripts that scan the room), not one each;
   * any join or leave this node hears of in the room (its own, or another node's diff) drops it.
   */
  membersOf (room: string): Promise<MembersAnswer> {
    const local = this.roomsByName.get(room)
    if (local === undefined) return this.lookUpMembers(room)
    const now = Date.now()
    const reused = local.membersAnswer
    if (reused !== undefined && now - reused.at < MEMBERS_ANSWER_MS) return reused.answer
    const answer = this.lookUpMembers(room)
    const entry = { at: now, answer }
    local.membersAnswer = entry
    answer.catch(() => { if (local.membersAnswer === entry) local.membersAnswer = undefined })
    return answer
  }

  private async lookUpMembers (room: string): Promise<MembersAnswer> {
    const limit = this.params.membersLimit
    const [members, counted] = await Promise.all([this.members(room, { limit }), this.adapter.roomSize?.(room)])
    const known = this.roomsByName.get(room)?.size ?? 0
    // A full answer is its own count; a capped one takes the best count there is.
    const size = members.length < limit ? members.length : Math.max(members.length, counted ?? known)
    return { size, members }
  }

  async history (room: string, options?: { after?: number, limit?: number }): Promise<RoomHistory> {
    if (typeof room !== 'string') throw new TypeError('fastify-ws-rooms: history(room): room must be a string')
    if (this.historyLimits === undefined || !this.isHistoryRoom(room)) throw new NoHistoryError(room)
    const after = options?.after ?? 0
    const limit = options?.limit
    if (!Number.isSafeInteger(after) || after < 0) throw new TypeError(`fastify-ws-rooms: history(): after must be an integer >= 0, got ${String(after)}`)
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new TypeError(`fastify-ws-rooms: history(): limit must be an integer >= 0, got ${String(limit)}`)
    }
    let page
    try {
      page = await this.historyStore.read(room, after, limit)
    } catch (err) {
      throw new UnavailableError(String((err as Error)?.message ?? err), { cause: err })
    }
    return { epoch: page.epoch, offset: page.offset, messages: page.messages.map((m) => JSON.parse(m.payload)) }
  }

  async disconnectUser (userId: string, options?: DisconnectOptions): Promise<void> {
    checkUserId('disconnectUser', userId)
    const command = checkDisconnect(options)
    await this.commandUser(userId, command)
  }

  async joinUser (userId: string, room: string): Promise<void> {
    checkUserId('joinUser', userId)
    checkRoomArgument('joinUser', room, this.params.maxRoomNameLength)
    await this.commandUser(userId, { op: 'join', room })
  }

  async leaveUser (userId: string, room: string): Promise<void> {
    checkUserId('leaveUser', userId)
    checkRoomArgument('leaveUser', room, this.params.maxRoomNameLength)
    await this.commandUser(userId, { op: 'leave', room })
  }

  /** The local part first (awaited), then the other nodes: resolves once the command is handed over. */
  private async commandUser (userId: string, command: UserCommand): Promise<void> {
    await applyUserCommand(this, userId, command)
    const publish = this.adapter.publishUserCommand
    if (publish === undefined) return
    try {
      await publish.call(this.adapter, userId, command)
    } catch (err) {
      throw new UnavailableError(`the ${command.op} command could not reach the other nodes: ${String((err as Error)?.message ?? err)}`, { cause: err })
    }
  }

  rooms (): Array<{ room: string, size: number }> {
    const list: Array<{ room: string, size: number }> = []
    for (const [room, local] of this.roomsByName) list.push({ room, size: local.members.size })
    return list
  }

  stats (): RoomsStats {
    return {
      connections: this.connections.size,
      rooms: this.roomsByName.size,
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

  // Not generic: the message's type is the public declaration's business (types/index.d.ts).
  handle (type: string, schema: ObjectSchema, handler: (conn: RoomConnection, message: any) => unknown): void {
    if (typeof type !== 'string' || type.length === 0) throw new InvalidHandlerError(String(type), 'the type must be a non-empty string')
    if (BUILTIN_TYPES.has(type)) throw new InvalidHandlerError(type, 'this type is built in')
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
      this.handlers[type] = { check: compiled, run: handler }
      return
    }
    const entry: MessageHandler = { check: undefined, run: handler }
    const settled = compiled.then((check) => {
      entry.check = check
    }, (err: unknown) => {
      if (this.handlers[type] === entry) delete this.handlers[type]
      const error = refused(err)
      if (this.#schemasChecked) this.log.error({ err: error }, error.message)
      else this.#schemaError ??= error
    })
    entry.compiled = settled
    this.#compiling.add(settled)
    settled.then(() => { this.#compiling.delete(settled) }, () => {})
    this.handlers[type] = entry
  }

  /** Wait for the schemas still compiling; rejects with the first that failed (its handler was dropped). */
  async schemasCompiled (): Promise<void> {
    await Promise.all(this.#compiling)
    this.#schemasChecked = true
    if (this.#schemaError !== undefined) throw this.#schemaError
  }

  // ---- AdapterNode ----

  room (name: string): Room | undefined {
    return this.roomsByName.get(name)
  }

  localMembers (room: string): RoomMember[] {
    const local = this.roomsByName.get(room)?.members
    if (local === undefined) return []
    const members: RoomMember[] = []
    for (const conn of local) if (conn.joining?.has(room) !== true) members.push({ connectionId: conn.id, user: conn.user })
    return members
  }

  localCount (room: string): number {
    return this.roomsByName.get(room)?.announced ?? 0
  }

  localRooms (): string[] {
    return [...this.roomsByName.keys()]
  }

  countDropped (count = 1): void {
    this.dropped += count
  }

  deliverPresence (room: string, fromNode: string, diff: PresenceDiff): void {
    if (fromNode === this.nodeId) return
    const local = this.roomsByName.get(room)
    if (local === undefined) return
    local.membersAnswer = undefined
    this.presence.remote(local, fromNode, diff)
  }

  presenceCounts (room: string, counts: ReadonlyMap<string, number>): void {
    this.roomsByName.get(room)?.setRemoteCounts(counts, this.nodeId)
  }

  deliverUserCommand (userId: string, command: UserCommand): void {
    applyUserCommand(this, userId, command).catch((err: unknown) => {
      this.log.error({ err, userId, op: command.op }, 'a user command from another node failed')
    })
  }

  deliverHistory (room: string, entry: HistoryEntry): void {
    this.roomsByName.get(room)?.stream?.accept(entry)
  }

  resyncHistory (): void {
    for (const room of this.roomsByName.values()) room.stream?.resync()
  }

  isHistoryRoom (room: string): boolean {
    const choose = this.params.history?.rooms
    if (choose === undefined) return this.params.history !== undefined
    try {
      return choose(room) === true
    } catch (err) {
      this.log.error({ err, room }, 'history.rooms threw; the room keeps no history')
      return false
    }
  }

  historyLost (room: Room, reason: string): void {
    this.log.warn({ room: room.name, reason, members: room.members.size }, 'closing the members of a history room with 1012 so they rejoin and learn what was lost')
    for (const conn of [...room.members]) conn.close(1012, HISTORY_LOST)
  }

  // ---- helpers ----

  /**
   * Await an adapter call that must not fail the caller: a rejection is logged, and counted as
   * dropped when the call carried something to the other nodes.
   */
  adapterCall (what: keyof RoomsAdapter, result: void | Promise<void>): Promise<void> {
    if (!isPromise(result)) return RESOLVED
    return result.catch((err: unknown) => {
      if (CARRIES_TO_OTHER_NODES.has(what)) this.dropped++
      this.log.error({ err }, `rooms adapter ${what} failed`)
    })
  }

  /** Listeners are user code: one that throws must not break the broker's bookkeeping. */
  emitSafe (event: string, ...args: unknown[]): void {
    if (this.listenerCount(event) === 0) return
    try {
      this.emit(event, ...args)
    } catch (err) {
      this.log.error({ err, event }, 'a fastify.rooms event listener threw')
    }
  }
}

const RESOLVED_JOIN: Promise<JoinResult> = Promise.resolve(undefined)

/** A server-side join under way; `resumed` once a client's join with `since` of the same room waits on it. */
interface ServerJoin {
  done: Promise<JoinResult>
  resumed: boolean
}

/** The adapter calls whose failure means something did not reach the other nodes (counted in `dropped`). */
const CARRIES_TO_OTHER_NODES: ReadonlySet<keyof RoomsAdapter> = new Set(['publishToRoom', 'publishToUser', 'publishToAll', 'publishPresence'])

function serialize (message: unknown): string {
  const payload = JSON.stringify(message)
  if (typeof payload !== 'string') throw new TypeError('fastify-ws-rooms: the message must be serializable to JSON')
  return payload
}

/**
 * A history room's message: a JSON object without its own `offset` (the room gives it one). It
 * names its room: a payload without `room` gets `"room":R`, so a client can tell which room's
 * stream every frame belongs to whatever the application sends; one whose `room` names another
 * room is refused (its receivers would count it in that room's stream). Serialized once per
 * broadcast: the room name is spliced into the one payload every receiver gets.
 */
export function serializeHistoryMessage (room: string, message: unknown): string {
  const value = message !== null && typeof message === 'object' && typeof (message as { toJSON?: unknown }).toJSON === 'function'
    ? (message as { toJSON: () => unknown }).toJSON()
    : message
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('fastify-ws-rooms: a message to a history room must be a JSON object')
  }
  if (Object.hasOwn(value, 'offset')) {
    throw new TypeError('fastify-ws-rooms: a message to a history room must not have its own "offset" (the room assigns it)')
  }
  const own = (value as { room?: unknown }).room
  if (own !== undefined && own !== room) {
    throw new TypeError(`fastify-ws-rooms: a message to history room ${JSON.stringify(room)} must not name another room in "room" (got ${typeof own === 'string' ? JSON.stringify(own) : typeof own})`)
  }
  const payload = serialize(value)
  if (payload[0] !== '{') throw new TypeError('fastify-ws-rooms: a message to a history room must be a JSON object')
  if (own !== undefined) return payload
  // No room field (JSON leaves out a `room` that is undefined): add it.
  return `${payload.slice(0, -1)}${payload.length === 2 ? '' : ','}"room":${JSON.stringify(room)}}`
}
