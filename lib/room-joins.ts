// Joining and leaving a room on this node: the steps a join takes before it is announced (the
// name and room-limit checks, authorizeJoin, the room's subscription, a history room's catch-up,
// the presence entry), each of which may wait, and a leave. A join not announced yet is the
// connection's alone: a disconnect or leave meanwhile undoes it without a trace. Server-side joins
// and a client's rejoin with `since` of the same room meet here too (see alreadyJoined).
import type { FastifyBaseLogger } from 'fastify'
import type { RoomMember, StreamPosition } from '../types/index.js'
import { isPromise } from './async.js'
import type { Connection } from './connection.js'
import type { RoomsEvents } from './events.js'
import { granted } from './grants.js'
import type { HistoryRooms } from './history/rooms.js'
import type { RoomsParams } from './options.js'
import type { PresenceBoard } from './presence.js'
import { isValidRoomName } from './protocol/room-names.js'
import { addedFrame, removedFrame } from './protocol/server-frames.js'
import { Room } from './room.js'
import { RoomStream, type StreamHost, type StreamJoinAck } from './room-stream.js'

/** Why a join was refused (the client gets the error frame of that row of refusals.ts). */
export type JoinRefusal = 'invalid_room' | 'too_many_rooms' | 'forbidden' | 'internal_error' | 'unavailable:read'

/**
 * What a join's steps answer: undefined (joined, or undone meanwhile), a refusal, or the ack's
 * data (a history room's position). Synchronous when nothing on the way is async.
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

/** What joins and leaves need from the adapter boundary. None of these rejects. */
export interface JoinLink {
  /** Resolves once subscribed (or the failure was logged); undefined when it was synchronous. */
  subscribeRoom (room: string): Promise<void> | undefined
  unsubscribeRoom (room: string): void
  addPresence (room: string, member: RoomMember): Promise<void> | undefined
  removePresence (room: string, connectionId: string): void
}

export interface RoomJoinsDeps {
  params: RoomsParams
  log: FastifyBaseLogger
  link: JoinLink
  events: RoomsEvents
  presence: PresenceBoard
  historyRooms: HistoryRooms
  /** The node's rooms (the Hub's map): a room exists while it has members, joins under way included. */
  rooms: Map<string, Room>
  /** What a history room's stream works with (the Hub). */
  streamHost: StreamHost
}

export class RoomJoins {
  private readonly params: RoomsParams
  private readonly log: FastifyBaseLogger
  private readonly link: JoinLink
  private readonly events: RoomsEvents
  private readonly presence: PresenceBoard
  private readonly historyRooms: HistoryRooms
  private readonly rooms: Map<string, Room>
  private readonly streamHost: StreamHost
  /** Server-side joins under way, by connection and room: a client's join of the same room waits for them. */
  private readonly serverJoins = new WeakMap<Connection, Map<string, ServerJoin>>()

  constructor (deps: RoomJoinsDeps) {
    this.params = deps.params
    this.log = deps.log
    this.link = deps.link
    this.events = deps.events
    this.presence = deps.presence
    this.historyRooms = deps.historyRooms
    this.rooms = deps.rooms
    this.streamHost = deps.streamHost
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
  join (conn: Connection, room: string, options: JoinOptions): JoinRefusal | undefined | Promise<JoinRefusal | undefined> {
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
    const stream = this.rooms.get(room)?.stream
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
  leave (conn: Connection, room: string, options?: LeaveOptions): boolean {
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
    // Grants come first, before the room limit and authorizeJoin; server-side joins skip them.
    if (authorize && conn.grants !== null && !granted(conn.grants, 'join', room)) return 'forbidden'
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
      const resumed = conn.joining?.has(name) === true ? undefined : this.rooms.get(name)?.stream?.resume(conn, since)
      if (resumed !== undefined) {
        if (!isPromise(resumed)) return resumed
        return resumed.catch((err: unknown) => {
          this.log.error({ err, connectionId: conn.id, room: name }, 'a history room\'s missed messages could not be read; the rejoin is refused, the member stays')
          return 'unavailable:read'
        })
      }
    }
    const stream = this.rooms.get(name)?.stream
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
    let room = this.rooms.get(name)
    const first = room === undefined
    if (room === undefined) {
      room = new Room(name)
      // Chosen once, for the room's life here: isHistoryRoom answers from it.
      if (this.historyRooms.keeps(name)) room.stream = new RoomStream(name, room.members, this.streamHost)
      this.rooms.set(name, room)
    }
    room.members.add(conn)
    const subscribed = first ? this.link.subscribeRoom(name) : undefined
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
    const registered = this.link.addPresence(room.name, { connectionId: conn.id, user: conn.user })
    if (registered !== undefined) {
      return registered.then(() => {
        // Undone while the write was in flight: the removal already ran, so take the entry out again.
        if (!this.stillJoining(conn, room.name)) this.link.removePresence(room.name, conn.id)
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
    this.rooms.get(room)?.stream?.activate(conn)
  }

  /** Take `conn` out of `room` and tell the remaining members, on every node. */
  removeMember (conn: Connection, name: string): void {
    conn.rooms.delete(name)
    // A join not announced yet is undone without a trace (its presence write will not happen).
    const announced = conn.joining?.delete(name) !== true
    if (conn.joining?.size === 0) conn.joining = null
    const room = this.rooms.get(name)
    if (room !== undefined) {
      room.members.delete(conn)
      room.stream?.leave(conn)
      if (announced) {
        room.membersAnswer = undefined
        this.presence.left(room, conn)
      }
      if (room.members.size === 0) {
        this.rooms.delete(name)
        this.link.unsubscribeRoom(name)
      }
    }
    if (!announced) return
    this.link.removePresence(name, conn.id)
    this.events.emit('leave', conn, name)
  }
}

const RESOLVED_JOIN: Promise<JoinRefusal | undefined> = Promise.resolve(undefined)

/** A server-side join under way; `resumed` once a client's join with `since` of the same room waits on it. */
interface ServerJoin {
  done: Promise<JoinRefusal | undefined>
  resumed: boolean
}
