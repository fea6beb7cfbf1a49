// The room broker behind `fastify.rooms`: local membership, fan-out to local members, and the
// node side of the adapter boundary. Every message is serialized once and framed once; the
// adapter only carries the same payload string to other nodes. Presence (presence.ts), history
// streams (history/), session expiry and user commands live in their own modules.
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type {
  AdapterNode, BroadcastOptions, DisconnectOptions, ErrorCode, HandledMessage, HistoryEntry, HistoryLimits, MessageId,
  PresenceDiff, RoomConnection, RoomHistory, RoomMember, RoomsAdapter, RoomsApi, RoomsEventName, RoomsEvents as RoomsEventListeners, RoomsHistory, RoomsStats, StreamPosition,
  UserCommand
} from '../types/index.js'
import type { TObject } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import { Admission } from './admission.js'
import { RoomsEvents } from './events.js'
import { Shutdown } from './shutdown.js'
import { Counters, statsOf } from './stats.js'
import { Connection, type ConnectionHost } from './connection.js'
import { frameText, type TickBatch, tickBatch } from './frame-writer.js'
import { MemoryHistoryStore } from './history/memory-store.js'
import { HistoryRooms } from './history/rooms.js'
import { RoomStream, type StreamHost, type StreamJoinAck } from './room-stream.js'
import { PresenceBoard, type PresenceHost } from './presence.js'
import { compile, envelopeSchema, isClientFrameType } from './protocol/client-frames.js'
import { isValidRoomName } from './protocol/room-names.js'
import { ackFrame, addedFrame, errorFrame, removedFrame } from './protocol/server-frames.js'
import { type MembersAnswer, Room } from './room.js'
import { SessionExpiry } from './session-expiry.js'
import { checkDisconnect, checkRoomArgument, checkUserId } from './api-arguments.js'
import { InvalidHandlerError, NoHistoryError, unavailableFrom, UnknownConnectionError } from './errors.js'
import { refusalCode, refusalError } from './refusals.js'
import type { RoomsParams } from './options.js'
import { isPromise, RESOLVED } from './async.js'
import { serialize, serializeHistoryMessage, splitForOffset } from './serialize.js'

export interface MessageHandler {
  check: TypeCheck<TObject>
  run: (conn: RoomConnection, message: any) => unknown
}

/** Why a join was refused (the client gets the error frame of that row of refusals.ts). */
export type JoinRefusal = 'invalid_room' | 'too_many_rooms' | 'forbidden' | 'internal_error' | 'unavailable:read'

/**
 * What a join's steps answer: undefined (joined, or undone meanwhile), a refusal, or the ack's
 * data (a history room's position, §9). Synchronous when nothing on the way is async.
 */
type JoinResult = undefined | JoinRefusal | StreamJoinAck

export interface JoinOptions {
  /** A client's join: `authorizeJoin` is asked, and it is always answered. Server-side joins pass false. */
  authorize: boolean
  since?: StreamPosition
  /**
   * Called once, when the join has taken effect and before the joiner gets any live message: sends
   * the client's ack, or (server-side joins) the `added` membership frame. A client's join that a
   * server-side leave undid meanwhile is acked too (and then told `removed`); an undone server-side
   * join is not.
   */
  ack: (data: StreamJoinAck | undefined) => void
}

export interface LeaveOptions {
  /** Server-side leaves tell the connection (`removed` frame). */
  tell?: boolean
}

/** The ack of a server-side join: the connection is told it was `added` (with the position in a history room). */
export function tellAdded (conn: Connection, room: string): JoinOptions['ack'] {
  return (data) => { conn.sendPayload(addedFrame(room, data)) }
}

/** How long (ms) a room's answer to the `members` request is reused on this node; see membersOf. */
const MEMBERS_ANSWER_MS = 1000

/** A close code (4001) and reason for connections whose session expired. */
const EXPIRED = { code: 4001, reason: 'Token expired' }
const HISTORY_LOST = 'History lost: rejoin to recover'

export class RoomBroker implements RoomsApi, AdapterNode, ConnectionHost, PresenceHost, StreamHost {
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
  readonly connections = new Map<string, Connection>()
  readonly counters = new Counters()
  readonly events: RoomsEvents
  readonly admission = new Admission()
  readonly shutdown: Shutdown
  readonly presence: PresenceBoard
  readonly expiry: SessionExpiry<Connection>

  private readonly roomsByName = new Map<string, Room>()
  /** A user's connections on this node: most users have one, kept without a Set. */
  private readonly byUser = new Map<string, Connection | Set<Connection>>()
  private nextConnection = 0
  private memoryHistory: MemoryHistoryStore | undefined
  private readonly historyRooms: HistoryRooms
  /** Server-side joins under way, by connection and room: a client's join of the same room waits for them. */
  private readonly serverJoins = new WeakMap<Connection, Map<string, ServerJoin>>()

  constructor (log: FastifyBaseLogger, params: RoomsParams) {
    this.log = log
    this.events = new RoomsEvents(log)
    this.params = params
    this.maxBufferedBytes = params.maxBufferedBytes
    this.historyRooms = new HistoryRooms(params.history, log)
    this.historyLimits = this.historyRooms.limits
    this.shutdown = new Shutdown(params.closeTimeout, this.admission, () => this.connections.values())
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
    this.memoryHistory = new MemoryHistoryStore(this.historyLimits, this)
    this.historyStore = this.memoryHistory
  }

  /** Shutdown, after every connection is gone: stop the timers, tell the other nodes what is pending. */
  stop (): void {
    this.presence.close()
    this.expiry.stop()
    this.shutdown.stop()
    this.memoryHistory?.close()
  }

  // ---- connections ----

  newConnectionId (): string {
    return `${this.nodeId}-${(++this.nextConnection).toString(36)}`
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
    this.events.emit('connect', conn)
  }

  closeStarted (conn: Connection): void {
    this.shutdown.track(conn)
  }

  /** The socket is gone (closed, or cut). */
  socketClosed (conn: Connection, code: number): void {
    this.shutdown.untrack(conn)
    this.remove(conn, code)
  }

  /** The connection is over: leave every room (others get `leave`), forget the connection. */
  remove (conn: Connection, code: number): void {
    conn.stop()
    if (!this.connections.delete(conn.id)) return
    this.expiry.delete(conn)
    for (const room of conn.rooms) this.removeMember(conn, room)
    const userId = conn.user.id
    const mine = this.byUser.get(userId)
    if (mine === conn) {
      this.byUser.delete(userId)
      this.adapterCall('unsubscribeUser', this.adapter.unsubscribeUser(userId))
    } else if (mine instanceof Set) {
      mine.delete(conn)
      if (mine.size === 1) this.byUser.set(userId, mine.values().next().value as Connection)
    }
    this.events.emit('disconnect', conn, code)
  }

  /** This node's connections of `userId`. */
  connectionsOf (userId: string): Connection[] {
    const mine = this.byUser.get(userId)
    if (mine === undefined) return []
    return mine instanceof Set ? [...mine] : [mine]
  }

  slowConsumer (conn: Connection): void {
    this.counters.slowConsumersClosed++
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
    const refusal = await this.joinRoom(conn, room, { authorize: false, ack: tellAdded(conn, room) })
    if (refusal !== undefined) throw refusalError(refusal, this.params)
  }

  async leave (connectionId: string, room: string): Promise<void> {
    this.leaveRoom(this.connectionOrThrow(connectionId), room, { tell: true })
  }

  /**
   * Join `conn` to `room`: the one way into a room, for a client's `join` and for the server's
   * (`fastify.rooms.join`, `joinUser`). Once the join took effect (subscribed, so a message
   * published to the room from any node reaches it; in a history room, caught up), `options.ack`
   * is called with the ack's data, and only then does a history room's joiner get what arrived
   * meanwhile and the live flow: no caller pairs two calls. Undefined when joined, else why it was
   * refused. Synchronous when nothing on the way is async (no `authorizeJoin`, a synchronous
   * adapter), so a join on one node costs no promise.
   */
  joinRoom (conn: Connection, room: string, options: JoinOptions): JoinRefusal | undefined | Promise<JoinRefusal | undefined> {
    if (!options.authorize) return this.serverJoin(conn, room, options.ack)
    const joining = this.tryJoin(conn, room, true, options.since)
    if (!isPromise(joining)) return this.clientJoined(conn, room, joining, options.ack)
    return joining.then((result) => this.clientJoined(conn, room, result, options.ack))
  }

  /**
   * A client's join is always answered: its ack, and when a server-side leave undid the join
   * while it was under way, `removed` right after (see activate), so the client never keeps a
   * room it is not in.
   */
  private clientJoined (conn: Connection, room: string, result: JoinResult, ack: JoinOptions['ack']): JoinRefusal | undefined {
    if (typeof result === 'string') return result
    ack(result)
    this.activate(conn, room)
    return undefined
  }

  /**
   * A join the server decided: once it took effect the connection gets `added` (the caller's ack),
   * in a history room with the position its live messages start after (what a join's ack would
   * say), so the client can recover the room after a reconnect. A room the connection is already
   * in (or joining) is left as it is, and nothing is sent.
   */
  private serverJoin (conn: Connection, room: string, ack: JoinOptions['ack']): JoinRefusal | undefined | Promise<JoinRefusal | undefined> {
    if (conn.rooms.has(room)) return undefined
    const joining = this.tryJoin(conn, room, false)
    if (!isPromise(joining)) return this.joinedByServer(conn, room, joining, ack)
    let underWay = this.serverJoins.get(conn)
    if (underWay === undefined) this.serverJoins.set(conn, underWay = new Map())
    const joins = underWay
    const entry: ServerJoin = { done: RESOLVED_JOIN, resumed: false }
    const done = (): void => {
      if (joins.get(room) === entry) joins.delete(room)
    }
    entry.done = joining.then(
      (result) => { done(); return this.joinedByServer(conn, room, result, ack, entry.resumed) },
      (err: unknown) => { done(); throw err }
    )
    joins.set(room, entry)
    return entry.done
  }

  /**
   * `resumed`: the client's own join with `since` waits on this one; it takes the live flow over
   * (RoomStream.resume), so the flow is not started here.
   */
  private joinedByServer (conn: Connection, room: string, result: JoinResult, ack: JoinOptions['ack'], resumed = false): JoinRefusal | undefined {
    if (typeof result === 'string') return result
    // Undone before it took effect (closed, or taken out again): the connection was never told, so nothing is owed.
    if (!conn.open || !conn.rooms.has(room) || conn.joining?.has(room) === true) return undefined
    const stream = this.roomsByName.get(room)?.stream
    if (stream != null && result === undefined) return undefined // a history join that completes always has a position
    ack(result)
    if (stream != null && result !== undefined) stream.markAdded(conn, result.offset)
    if (!resumed || stream == null) this.activate(conn, room)
    return undefined
  }

  /**
   * Take `conn` out of `room`: the one way out of a room short of leaving the node (see remove).
   * False when it is not a member (or is closing: it leaves every room as its socket closes).
   * `tell` (server-side leaves): the connection gets `removed`. A join of its own still under way
   * is undone; it hears `removed` right after that join's ack (see activate) instead.
   */
  leaveRoom (conn: Connection, room: string, options?: LeaveOptions): boolean {
    if (!conn.open || !conn.rooms.has(room)) return false
    const announced = conn.joining?.has(room) !== true
    this.removeMember(conn, room)
    if (options?.tell === true && announced) conn.sendPayload(removedFrame(room))
    return true
  }

  /** A client's `join` or one the server decided: whether `authorizeJoin` is asked, and `since`. */
  private tryJoin (conn: Connection, room: string, authorize: boolean, since?: StreamPosition): JoinResult | Promise<JoinResult> {
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
          return 'unavailable:read'
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
      if (this.historyLimits !== undefined && this.isHistoryRoom(name)) room.stream = new RoomStream(name, room.members, this)
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

  private historyJoinFailed (conn: Connection, room: string, err: unknown): JoinRefusal {
    this.log.error({ err, connectionId: conn.id, room }, 'a history room\'s position could not be read; the join is refused')
    if (conn.rooms.has(room)) this.removeMember(conn, room)
    return 'unavailable:read'
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
    this.events.emit('join', conn, room.name)
    return data
  }

  /**
   * The join's ack (or `added`) is out: a history room's joiner now gets what arrived meanwhile,
   * then the live flow. A join that a server-side leave undid while it was under way is followed
   * by `removed`, so the client does not keep a room it is not in.
   */
  private activate (conn: Connection, room: string): void {
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
  private removeMember (conn: Connection, name: string): void {
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
    this.events.emit('leave', conn, name)
  }

  private connectionOrThrow (connectionId: string): Connection {
    const conn = this.connections.get(connectionId)
    if (conn === undefined || !conn.open) throw new UnknownConnectionError(String(connectionId))
    return conn
  }

  /**
   * Cluster-wide control of one user's connections (§11), applied to this node's connections of
   * `userId`: the adapter carries the command to the nodes where the user is connected (each
   * subscribes to the user's channel while the user is connected there), so no node needs to know
   * where a user is. Resolves once every join took effect.
   */
  async applyUserCommand (userId: string, command: UserCommand): Promise<void> {
    const conns = this.connectionsOf(userId)
    if (conns.length === 0) return
    switch (command.op) {
      case 'disconnect':
        for (const conn of conns) conn.close(command.code, command.reason)
        return
      case 'leave':
        for (const conn of conns) this.leaveRoom(conn, command.room, { tell: true })
        return
      case 'join':
        await Promise.all(conns.map(async (conn) => {
          if (!conn.open) return
          const refusal = await this.joinRoom(conn, command.room, { authorize: false, ack: tellAdded(conn, command.room) })
          if (refusal !== undefined) {
            this.log.warn({ connectionId: conn.id, userId, room: command.room, code: refusalCode(refusal) }, 'joinUser: a connection of the user could not join')
          }
        }))
    }
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
    const { head, sep } = splitForOffset(payload)
    let published: { epoch: string, offset: number } | Promise<{ epoch: string, offset: number }>
    try {
      published = this.historyStore.publish(room, head, sep, except)
    } catch (err) {
      throw unavailableFrom(err)
    }
    if (!isPromise(published)) return published
    return published.catch((err: unknown) => {
      throw unavailableFrom(err)
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
      throw unavailableFrom(err)
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
    await this.applyUserCommand(userId, command)
    const publish = this.adapter.publishUserCommand
    if (publish === undefined) return
    try {
      await publish.call(this.adapter, userId, command)
    } catch (err) {
      throw unavailableFrom(err, `the ${command.op} command could not reach the other nodes`)
    }
  }

  rooms (): Array<{ room: string, size: number }> {
    const list: Array<{ room: string, size: number }> = []
    for (const [room, local] of this.roomsByName) list.push({ room, size: local.members.size })
    return list
  }

  stats (): RoomsStats {
    return statsOf(this.counters, this.connections.size, this.roomsByName.size)
  }

  connection (connectionId: string): RoomConnection | undefined {
    return this.connections.get(connectionId)
  }

  handle<S extends TObject> (type: string, schema: S, handler: (conn: RoomConnection, message: HandledMessage<S>) => unknown): void {
    if (typeof type !== 'string' || type.length === 0) throw new InvalidHandlerError(String(type), 'the type must be a non-empty string')
    if (isClientFrameType(type)) throw new InvalidHandlerError(type, 'this type is built in')
    if (this.handlers[type] !== undefined) throw new InvalidHandlerError(type, 'a handler for this type exists already')
    if (schema === null || typeof schema !== 'object' || schema.type !== 'object' || typeof schema.properties !== 'object') {
      throw new InvalidHandlerError(type, 'the schema must be a TypeBox object schema (Type.Object)')
    }
    if (typeof handler !== 'function') throw new InvalidHandlerError(type, 'the handler must be a function')
    this.handlers[type] = { check: compile(envelopeSchema(type, schema)), run: handler }
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
    this.counters.dropped += count
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
    this.applyUserCommand(userId, command).catch((err: unknown) => {
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
    return this.historyRooms.keeps(room)
  }

  historyLost (name: string, reason: string): void {
    const room = this.roomsByName.get(name)
    if (room === undefined) return
    this.log.warn({ room: name, reason, members: room.members.size }, 'closing the members of a history room with 1012 so they rejoin and learn what was lost')
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
      if (CARRIES_TO_OTHER_NODES.has(what)) this.counters.dropped++
      this.log.error({ err }, `rooms adapter ${what} failed`)
    })
  }

  on<E extends RoomsEventName> (event: E, listener: RoomsEventListeners[E]): this {
    this.events.on(event, listener)
    return this
  }

  off<E extends RoomsEventName> (event: E, listener: RoomsEventListeners[E]): this {
    this.events.off(event, listener)
    return this
  }

  /** For the soak test's leftover check (until the facade hands it the parts). */
  listenerCount (event: RoomsEventName): number {
    return this.events.listenerCount(event)
  }
}

const RESOLVED_JOIN: Promise<JoinRefusal | undefined> = Promise.resolve(undefined)

/** A server-side join under way; `resumed` once a client's join with `since` of the same room waits on it. */
interface ServerJoin {
  done: Promise<JoinRefusal | undefined>
  resumed: boolean
}

/** The adapter calls whose failure means something did not reach the other nodes (counted in `dropped`). */
const CARRIES_TO_OTHER_NODES: ReadonlySet<keyof RoomsAdapter> = new Set(['publishToRoom', 'publishToUser', 'publishToAll', 'publishPresence'])
