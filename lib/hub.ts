// This node's connections, users and rooms: who is connected, who is in which room, and local
// delivery to them (a room, a user, everyone). Joins and leaves go through one `join` and one
// `leave`; a connection leaving the node goes through `remove`. What other nodes must hear of
// (subscriptions, presence) goes through the HubLink, which the adapter boundary implements;
// this file knows no adapter.
import type { FastifyBaseLogger } from 'fastify'
import type { HistoryEntry, PresenceDiff, RoomMember, RoomsHistory, UserCommand } from '../types/index.js'
import type { Connection } from './connection.js'
import type { RoomsEvents } from './events.js'
import { frameText, RoomFrame } from './frame-writer.js'
import type { HistorySink } from './history/memory-store.js'
import type { HistoryRooms } from './history/rooms.js'
import type { RoomsParams } from './options.js'
import { PresenceBoard, type PresenceOutbound } from './presence.js'
import { refusalCode } from './refusals.js'
import type { Room } from './room.js'
import { type JoinLink, type JoinOptions, type JoinRefusal, type LeaveOptions, RoomJoins, tellAdded } from './room-joins.js'
import type { StreamHost } from './room-stream.js'
import { SessionExpiry } from './session-expiry.js'
import type { Counters } from './stats.js'

/** What the hub needs from the adapter boundary (ClusterLink implements it). None of these rejects. */
export interface HubLink extends JoinLink, PresenceOutbound {
  /** Where history rooms are ordered and kept (only asked when history is on). */
  readonly history: RoomsHistory
  /** Resolves once subscribed (or the failure was logged); undefined when it was synchronous. */
  subscribeUser (userId: string): Promise<void> | undefined
  unsubscribeUser (userId: string): void
}

export interface HubDeps {
  nodeId: string
  params: RoomsParams
  log: FastifyBaseLogger
  link: HubLink
  events: RoomsEvents
  counters: Counters
  historyRooms: HistoryRooms
}

/** A close code (4001) and reason for connections whose session expired. */
const EXPIRED = { code: 4001, reason: 'Token expired' }
const HISTORY_LOST = 'History lost: rejoin to recover'

export class Hub implements StreamHost, HistorySink {
  readonly nodeId: string
  readonly log: FastifyBaseLogger
  readonly maxBufferedBytes: number
  private readonly counters: Counters
  private readonly presence: PresenceBoard
  private readonly link: HubLink
  private readonly events: RoomsEvents
  private readonly historyRooms: HistoryRooms
  private readonly expiry: SessionExpiry<Connection>
  private readonly byId = new Map<string, Connection>()
  private readonly rooms = new Map<string, Room>()
  /** A user's connections on this node: most users have one, kept without a Set. */
  private readonly byUser = new Map<string, Connection | Set<Connection>>()
  /** Presence diffs heard from other nodes: orders them against reads of the counts (see Room.setRemoteCounts). */
  private diffsHeard = 0
  /** Users whose channel is being subscribed, with their connections waiting for it (see admit). */
  private readonly subscribingUsers = new Map<string, { subscribed: Promise<void>, connections: number }>()
  private nextConnection = 0
  private readonly joins: RoomJoins

  constructor (deps: HubDeps) {
    this.nodeId = deps.nodeId
    this.log = deps.log
    this.link = deps.link
    this.events = deps.events
    this.counters = deps.counters
    this.historyRooms = deps.historyRooms
    this.maxBufferedBytes = deps.params.maxBufferedBytes
    this.presence = new PresenceBoard({
      nodeId: deps.nodeId,
      log: deps.log,
      room: (name) => this.rooms.get(name),
      deliver: (room, payload) => { this.deliverToRoom(room, payload) },
      link: deps.link
    }, deps.params)
    this.expiry = new SessionExpiry((conn) => conn.close(EXPIRED.code, EXPIRED.reason))
    const { params, log, link, events, historyRooms } = deps
    this.joins = new RoomJoins({ params, log, link, events, presence: this.presence, historyRooms, rooms: this.rooms, streamHost: this })
  }

  /** Shutdown, after every connection is gone: stop the timers, tell the other nodes what is pending. */
  stop (): void {
    this.presence.close()
    this.expiry.stop()
  }

  // ---- connections ----

  newConnectionId (): string {
    return `${this.nodeId}-${(++this.nextConnection).toString(36)}`
  }

  /**
   * Welcome an accepted connection (`welcome` says false when it must not be) and register it, once this node listens on its user's channel:
   * a command another node sends to the user right after the welcome must reach it. Undefined when
   * that was at once (no adapter, or the user already has a connection here).
   */
  admit (conn: Connection, welcome: () => boolean): Promise<void> | undefined {
    const userId = conn.user.id
    let waiting = this.subscribingUsers.get(userId)
    if (waiting === undefined && !this.byUser.has(userId)) {
      const subscribed = this.link.subscribeUser(userId)
      if (subscribed !== undefined) {
        waiting = { subscribed, connections: 0 }
        this.subscribingUsers.set(userId, waiting)
      }
    }
    if (waiting === undefined) {
      if (welcome()) this.add(conn)
      return undefined
    }
    const pending = waiting
    pending.connections++
    return pending.subscribed.then(() => {
      if (--pending.connections === 0) this.subscribingUsers.delete(userId)
      if (conn.open && welcome()) {
        this.add(conn)
      } else if (pending.connections === 0 && !this.byUser.has(userId)) {
        // Closed while waiting, and no other connection of the user came: nobody needs the channel.
        this.link.unsubscribeUser(userId)
      }
    })
  }

  /** Register a welcomed connection (its user's channel is subscribed: see admit). */
  private add (conn: Connection): void {
    this.byId.set(conn.id, conn)
    const userId = conn.user.id
    const mine = this.byUser.get(userId)
    if (mine === undefined) {
      this.byUser.set(userId, conn)
    } else if (mine instanceof Set) {
      mine.add(conn)
    } else {
      this.byUser.set(userId, new Set([mine, conn]))
    }
    if (conn.expiresAt !== undefined) this.expiry.add(conn)
    this.events.emit('connect', conn)
  }

  /** A refresh replaced the session's expiry: the connection takes its new place in the heap (or leaves it). */
  moveExpiry (conn: Connection, expiresAt: number | undefined): void {
    this.expiry.delete(conn)
    conn.expiresAt = expiresAt
    if (expiresAt !== undefined) this.expiry.add(conn)
  }

  /** The connection is over (its socket closed, or the server dropped it): leave every room (others get `leave`), forget it. */
  remove (conn: Connection, code: number): void {
    conn.stop()
    if (!this.byId.delete(conn.id)) return
    this.expiry.delete(conn)
    for (const room of conn.rooms) this.joins.removeMember(conn, room)
    const userId = conn.user.id
    const mine = this.byUser.get(userId)
    if (mine === conn) {
      this.byUser.delete(userId)
      this.link.unsubscribeUser(userId)
    } else if (mine instanceof Set) {
      mine.delete(conn)
      if (mine.size === 1) this.byUser.set(userId, mine.values().next().value as Connection)
    }
    this.events.emit('disconnect', conn, code)
  }

  slowConsumer (conn: Connection): void {
    this.counters.slowConsumersClosed++
    this.log.warn({ connectionId: conn.id, maxBufferedBytes: this.maxBufferedBytes }, 'closing a receiver that reads too slowly')
    // The close frame waits behind what is buffered (it is cut after closeTimeout); the receiver
    // leaves its rooms now, so the others hear of it and nothing more is queued.
    conn.close(1013, 'Receiver too slow')
    this.remove(conn, 1013)
  }

  connection (id: string): Connection | undefined {
    return this.byId.get(id)
  }

  connections (): IterableIterator<Connection> {
    return this.byId.values()
  }

  get connectionCount (): number {
    return this.byId.size
  }

  /** This node's connections of `userId`. */
  connectionsOf (userId: string): Connection[] {
    const mine = this.byUser.get(userId)
    if (mine === undefined) return []
    return mine instanceof Set ? [...mine] : [mine]
  }

  // ---- rooms ----

  room (name: string): Room | undefined {
    return this.rooms.get(name)
  }

  roomList (): Array<{ room: string, size: number }> {
    const list: Array<{ room: string, size: number }> = []
    for (const [room, local] of this.rooms) list.push({ room, size: local.members.size })
    return list
  }

  get roomCount (): number {
    return this.rooms.size
  }

  /**
   * Whether `name` keeps history. A room with members here answers from its stream, chosen once
   * when the room was created (a chat's sender is a member, so its room exists); any other asks
   * the `history.rooms` option.
   */
  isHistoryRoom (name: string): boolean {
    if (this.historyRooms.limits === undefined) return false
    const room = this.rooms.get(name)
    return room !== undefined ? room.stream !== null : this.historyRooms.keeps(name)
  }

  /** Where history rooms are ordered and kept (for RoomStream). */
  get historyStore (): RoomsHistory {
    return this.link.history
  }

  localMembers (room: string): RoomMember[] {
    const local = this.rooms.get(room)?.members
    if (local === undefined) return []
    const members: RoomMember[] = []
    for (const conn of local) if (conn.joining?.has(room) !== true) members.push({ connectionId: conn.id, user: conn.user })
    return members
  }

  localCount (room: string): number {
    return this.rooms.get(room)?.announced ?? 0
  }

  localRooms (): string[] {
    return [...this.rooms.keys()]
  }

  // ---- joining and leaving (room-joins.ts) ----

  /**
   * Join `conn` to `room`: the one way into a room, for a client's `join` and for the server's.
   * `options.ack` is called once the join took effect, before the joiner gets any live message.
   * Undefined when joined, else why it was refused; synchronous when nothing on the way is async.
   */
  join (conn: Connection, room: string, options: JoinOptions): JoinRefusal | undefined | Promise<JoinRefusal | undefined> {
    return this.joins.join(conn, room, options)
  }

  /** Take `conn` out of `room`; false when it is not a member. `tell`: it gets `removed`. */
  leave (conn: Connection, room: string, options?: LeaveOptions): boolean {
    return this.joins.leave(conn, room, options)
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
        for (const conn of conns) this.leave(conn, command.room, { tell: true })
        return
      case 'join':
        await Promise.all(conns.map(async (conn) => {
          if (!conn.open) return
          const refusal = await this.join(conn, command.room, { authorize: false, ack: tellAdded(conn, command.room) })
          if (refusal !== undefined) {
            this.log.warn({ connectionId: conn.id, userId, room: command.room, code: refusalCode(refusal) }, 'joinUser: a connection of the user could not join')
          }
        }))
    }
  }

  // ---- local delivery ----

  /** Deliver to this node's members of `room` (except one connection): framed once for all of them. */
  deliverToRoom (room: string, payload: string, except?: string): void {
    const local = this.rooms.get(room)?.members
    if (local === undefined) return
    const frame = new RoomFrame(local, payload)
    for (const conn of local) if (conn.id !== except) frame.to(conn)
  }

  deliverToUser (userId: string, payload: string): void {
    const mine = this.byUser.get(userId)
    if (mine === undefined) return
    const frame = frameText(payload)
    if (mine instanceof Set) for (const conn of mine) conn.deliver(frame, payload)
    else mine.deliver(frame, payload)
  }

  deliverToAll (payload: string): void {
    if (this.byId.size === 0) return
    const frame = frameText(payload)
    for (const conn of this.byId.values()) conn.deliver(frame, payload)
  }

  // ---- from other nodes ----

  /** Another node's joins and leaves of a room with members here. */
  remotePresence (room: string, fromNode: string, diff: PresenceDiff): void {
    if (fromNode === this.nodeId) return
    const local = this.rooms.get(room)
    if (local === undefined) return
    local.membersAnswer = undefined
    this.presence.remote(local, fromNode, diff, ++this.diffsHeard)
  }

  /** What a read of the nodes' counts started now passes back to remoteCounts. */
  presenceReadMark (): number {
    return this.diffsHeard
  }

  /** The other nodes' member counts in `room`, as the shared store knew them when the read started (`readMark`). */
  remoteCounts (room: string, counts: ReadonlyMap<string, number>, readMark = this.diffsHeard): void {
    this.rooms.get(room)?.setRemoteCounts(counts, this.nodeId, readMark)
  }

  /** A history room's message, in the room's order (from the history store, whichever node published it). */
  deliverHistory (room: string, entry: HistoryEntry): void {
    this.rooms.get(room)?.stream?.accept(entry)
  }

  /** Messages may have been missed (the adapter resubscribed): every history room checks its position. */
  resyncHistory (): void {
    for (const room of this.rooms.values()) room.stream?.resync()
  }

  /** The members of history room `name` can no longer be given what they missed: close them (1012) so they rejoin and learn it. */
  historyLost (name: string, reason: string): void {
    const room = this.rooms.get(name)
    if (room === undefined) return
    this.log.warn({ room: name, reason, members: room.members.size }, 'closing the members of a history room with 1012 so they rejoin and learn what was lost')
    for (const conn of [...room.members]) conn.close(1012, HISTORY_LOST)
  }
}
