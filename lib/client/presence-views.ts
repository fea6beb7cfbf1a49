// Who is in each room, as far as this client can tell (docs/presence.md): a `members` answer as the
// starting point, then the room's `join`/`leave` events (`each`) or `presence` frames (`batched`).
// Events name users, not connections, so a user is counted once per connection it has in the room.
// A change that raced the `members` answer (it arrived while the answer was on its way, or sits in
// the first batch after it) may already be in that answer: such a join counts only for a user the
// answer did not list, such a leave only for one it did.
import type { RoomPresence } from '../../types/client.js'
import type { MembersAckData, PresenceEvent, RoomUser } from '../../types/protocol.js'

interface View {
  size: number
  users: Map<string, { user: RoomUser, connections: number }>
  complete: boolean
  /** Changes that may already be in the snapshot: until the next snapshot lands, and for the first batch after it. */
  settling: boolean
  /** A `members` request is in flight: changes wait here, to be applied (settling) on top of its answer. */
  queued: Array<{ user: RoomUser, joined: boolean, each: boolean }> | null
  loaded: boolean
}

function isUser (value: unknown): value is RoomUser {
  return value !== null && typeof value === 'object' && typeof (value as { id?: unknown }).id === 'string'
}

export class PresenceViews {
  readonly #rooms = new Map<string, View>()

  get (room: string): RoomPresence | undefined {
    const view = this.#rooms.get(room)
    if (view === undefined || !view.loaded) return undefined
    return {
      room,
      size: view.size,
      members: [...view.users.values()].map((entry) => entry.user),
      complete: view.complete
    }
  }

  tracked (room: string): boolean {
    return this.#rooms.has(room)
  }

  rooms (): string[] {
    return [...this.#rooms.keys()]
  }

  /** A `members` request for `room` is on its way: what arrives until its answer may be in it. */
  loading (room: string): void {
    let view = this.#rooms.get(room)
    if (view === undefined) {
      view = { size: 0, users: new Map(), complete: true, settling: true, queued: null, loaded: false }
      this.#rooms.set(room, view)
    }
    view.queued ??= []
    view.settling = true
  }

  /** The `members` answer. Returns whether the view changed. */
  snapshot (room: string, data: MembersAckData): boolean {
    const view = this.#rooms.get(room)
    if (view === undefined || data === null || typeof data !== 'object' || !Array.isArray(data.members)) return false
    const users = new Map<string, { user: RoomUser, connections: number }>()
    for (const member of data.members) {
      if (!isUser(member?.user)) continue
      const entry = users.get(member.user.id)
      if (entry === undefined) users.set(member.user.id, { user: member.user, connections: 1 })
      else entry.connections++
    }
    view.users = users
    view.size = Number.isSafeInteger(data.size) ? data.size : data.members.length
    view.complete = data.members.length >= view.size
    const queued = view.queued ?? []
    view.queued = null
    view.loaded = true
    for (const { user, joined, each } of queued) {
      if (this.#apply(view, user, joined, true) && each) view.size = Math.max(0, view.size + (joined ? 1 : -1))
    }
    return true
  }

  /** The request failed: the view keeps what it had (nothing, the first time). */
  failed (room: string): void {
    const view = this.#rooms.get(room)
    if (view === undefined) return
    view.queued = null
    if (!view.loaded) this.#rooms.delete(room)
  }

  /** A `system` join or leave event (`each`). Returns whether a loaded view changed. */
  change (room: string, user: unknown, joined: boolean): boolean {
    const view = this.#rooms.get(room)
    if (view === undefined || !isUser(user)) return false
    if (view.queued !== null) {
      view.queued.push({ user, joined, each: true })
      return false
    }
    const applied = this.#apply(view, user, joined, false)
    if (applied) view.size = Math.max(0, view.size + (joined ? 1 : -1))
    return applied
  }

  /** A `presence` frame (`batched`). Returns whether a loaded view changed. */
  batch (room: string, frame: PresenceEvent): boolean {
    const view = this.#rooms.get(room)
    if (view === undefined) return false
    const left = (Array.isArray(frame.left) ? frame.left : []).filter(isUser)
    const joined = (Array.isArray(frame.joined) ? frame.joined : []).filter(isUser)
    if (view.queued !== null) {
      // Its size may be older or newer than the answer's: the answer's stands.
      for (const user of left) view.queued.push({ user, joined: false, each: false })
      for (const user of joined) view.queued.push({ user, joined: true, each: false })
      return false
    }
    for (const user of left) this.#apply(view, user, false, view.settling)
    for (const user of joined) this.#apply(view, user, true, view.settling)
    view.settling = false
    if (Number.isSafeInteger(frame.size)) view.size = frame.size
    return true
  }

  forget (room: string): void {
    this.#rooms.delete(room)
  }

  #apply (view: View, user: RoomUser, joined: boolean, settling: boolean): boolean {
    const entry = view.users.get(user.id)
    if (joined) {
      if (entry === undefined) {
        view.users.set(user.id, { user, connections: 1 })
        return true
      }
      if (settling) return false
      entry.connections++
      return true
    }
    if (entry === undefined) return !settling && !view.complete // an unlisted member of a capped list left
    if (--entry.connections === 0) view.users.delete(user.id)
    return true
  }
}
