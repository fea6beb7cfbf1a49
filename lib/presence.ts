// Presence at scale (docs/presence.md): how the members of a room hear of joins and leaves. Per room
// and per node a mode: `each` sends v1's system join/leave events; `batched` coalesces the joins and
// leaves of one `presenceInterval` into one presence frame per room, framed once for every local
// member; `none` sends nothing. Across nodes the changes travel as diffs that carry the sender's
// member count, and each receiving node frames them by its own mode, so a node's presence traffic
// is bounded by its own members per interval, not by the cluster's churn.
import type { FastifyBaseLogger } from 'fastify'
import type { PresenceChange, PresenceDiff, PresenceMode } from '../types/index.js'
import type { Connection } from './connection.js'
import { joinEventFrame, leaveEventFrame, presenceFrame } from './protocol/server-frames.js'
import type { Room } from './room.js'
import type { RoomsParams } from './options.js'

/** How this node's presence changes reach the other nodes (ClusterLink). Never throws. */
export interface PresenceOutbound {
  /**
   * Tell the other nodes of `diff`. `framed`: the v1 event of an `each` change, which an adapter
   * without presence diffs carries instead; undefined for a batch (such an adapter carries none).
   */
  publishPresence (room: string, diff: PresenceDiff, framed: string | undefined): void
}

export interface PresenceDeps {
  readonly nodeId: string
  readonly log: FastifyBaseLogger
  room (name: string): Room | undefined
  /** Frame once and write to the room's local members. */
  deliver (room: string, payload: string): void
  readonly link: PresenceOutbound
}

/** What a room has gathered since its last presence frame / diff. */
interface Pending {
  /** Users (serialized) to list in the next presence frame; null when the room frames nothing. */
  joined: string[] | null
  left: string[] | null
  /** This node's own changes not yet told to the other nodes. */
  outgoing: PresenceChange[] | null
}

const MODES = new Set<unknown>(['each', 'batched', 'none'])
/** Rooms whose bad `presenceEvents` answer was logged (bounded: cleared when full). */
const MAX_LOGGED_ROOMS = 10_000

export class PresenceBoard {
  private readonly deps: PresenceDeps
  private readonly option: RoomsParams['presenceEvents']
  private readonly eachMax: number
  private readonly intervalMs: number
  private readonly pending = new Map<string, Pending>()
  private timer: NodeJS.Timeout | undefined
  private readonly loggedRooms = new Set<string>()

  constructor (deps: PresenceDeps, params: RoomsParams) {
    this.deps = deps
    this.option = params.presenceEvents
    this.eachMax = params.presenceEachMax
    this.intervalMs = params.presenceInterval
  }

  /**
   * The room's mode on this node now. `auto`: `each` while the room has at most presenceEachMax
   * members here and, as far as this node knows, across nodes; so a node with a small share of a
   * big room sends batches too.
   */
  modeOf (room: Room): PresenceMode {
    const option = this.option
    if (option === 'auto') return room.announced <= this.eachMax && room.size <= this.eachMax ? 'each' : 'batched'
    if (typeof option === 'function') return (room.chosenMode ??= this.choose(option, room.name))
    return option
  }

  private choose (choose: (room: string) => PresenceMode, name: string): PresenceMode {
    let mode: unknown
    try {
      mode = choose(name)
    } catch (err) {
      this.logOnce(name, { err }, 'presenceEvents threw; the room falls back to batched')
      return 'batched'
    }
    if (MODES.has(mode)) return mode as PresenceMode
    this.logOnce(name, { mode: typeof mode === 'string' ? mode : typeof mode }, 'presenceEvents returned neither each, batched nor none; the room falls back to batched')
    return 'batched'
  }

  private logOnce (room: string, details: Record<string, unknown>, message: string): void {
    if (this.loggedRooms.has(room)) return
    if (this.loggedRooms.size >= MAX_LOGGED_ROOMS) this.loggedRooms.clear()
    this.loggedRooms.add(room)
    this.deps.log.error({ ...details, room }, message)
  }

  /** A local member's join took effect. */
  joined (room: Room, conn: Connection): void {
    room.announced++
    this.change(room, { joined: true, connectionId: conn.id, user: conn.user }, conn.userJson)
  }

  /** A local member whose join was announced left (the room may now be empty). */
  left (room: Room, conn: Connection): void {
    room.announced--
    this.change(room, { joined: false, connectionId: conn.id, user: conn.user }, conn.userJson)
  }

  private change (room: Room, change: PresenceChange, userJson: string): void {
    const mode = this.modeOf(room)
    if (mode === 'each') {
      const frame = change.joined ? joinEventFrame(room.name, userJson) : leaveEventFrame(room.name, userJson)
      this.deps.deliver(room.name, frame)
      this.tellNow(room, change, frame)
      return
    }
    const pending = this.pendingOf(room.name)
    if (mode === 'batched') {
      if (change.joined) (pending.joined ??= []).push(userJson)
      else (pending.left ??= []).push(userJson)
    }
    ;(pending.outgoing ??= []).push(change)
  }

  /** Tell the other nodes now (an `each` change), after whatever this node had not told them yet, in order. */
  private tellNow (room: Room, change: PresenceChange, frame: string): void {
    const pending = this.pending.get(room.name)
    const changes = pending?.outgoing ?? []
    if (pending !== undefined) pending.outgoing = null
    changes.push(change)
    this.deps.link.publishPresence(room.name, { count: room.announced, changes }, frame)
  }

  /** Another node's changes in a room this node has members in. */
  remote (room: Room, fromNode: string, diff: PresenceDiff, mark: number): void {
    room.setRemoteCount(fromNode, diff.count, mark)
    let pending: Pending | undefined
    for (const change of diff.changes) {
      const mode = this.modeOf(room)
      if (mode === 'none') continue
      const userJson = JSON.stringify(change.user)
      if (mode === 'each') {
        this.deps.deliver(room.name, change.joined ? joinEventFrame(room.name, userJson) : leaveEventFrame(room.name, userJson))
        continue
      }
      pending ??= this.pendingOf(room.name)
      if (change.joined) (pending.joined ??= []).push(userJson)
      else (pending.left ??= []).push(userJson)
    }
  }

  private pendingOf (room: string): Pending {
    let pending = this.pending.get(room)
    if (pending === undefined) {
      pending = { joined: null, left: null, outgoing: null }
      this.pending.set(room, pending)
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs)
      this.timer.unref()
    }
    return pending
  }

  /** Once per interval: one presence frame per room that changed, and this node's diffs to the others. */
  flush (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.size === 0) return
    const pending = [...this.pending]
    this.pending.clear()
    for (const [name, p] of pending) {
      const room = this.deps.room(name)
      if (p.outgoing !== null) this.deps.link.publishPresence(name, { count: room?.announced ?? 0, changes: p.outgoing }, undefined)
      if ((p.joined !== null || p.left !== null) && room !== undefined && room.members.size > 0) {
        this.deps.deliver(name, presenceFrame(name, p.joined ?? [], p.left ?? [], room.size))
      }
    }
  }

  /** Shutdown: tell the other nodes what is still pending, and stop the timer. */
  close (): void {
    this.flush()
  }
}
