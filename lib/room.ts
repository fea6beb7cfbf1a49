// One room on this node: its local members, what this node knows of the others' counts, and, in a
// history room, its stream position. A Room exists while it has local members (or joins under way).
import type { PresenceMode, RoomMember } from '../types/index.js'
import type { Connection } from './connection.js'
import type { RoomStream } from './room-stream.js'

/** The answer to a `members` request: the room's size across nodes and up to membersLimit members. */
export interface MembersAnswer { size: number, members: RoomMember[] }

export class Room {
  readonly name: string
  /** Local members, joins under way included (see `Connection.joining`). */
  readonly members = new Set<Connection>()
  /** Local members whose join was announced: the count other nodes are told. */
  announced = 0
  /** History rooms: the room's position on this node and the joins catching up; null otherwise. */
  stream: RoomStream | null = null
  /** Other nodes' member counts, by node id, from their presence diffs; null until one is known. */
  remoteCounts: Map<string, number> | null = null
  /** The sum of `remoteCounts`. */
  remoteSize = 0
  /** The mode a `presenceEvents` function chose for this room (asked once per room); undefined otherwise. */
  chosenMode: PresenceMode | undefined
  /** The last answer to a `members` request here, and when it was looked up; dropped on any change heard of. */
  membersAnswer: { at: number, answer: Promise<MembersAnswer> } | undefined

  constructor (name: string) {
    this.name = name
  }

  /** Members across nodes, as this node knows it. */
  get size (): number {
    return this.announced + this.remoteSize
  }

  /** Each node's count came from its diff received at this mark (the hub's count of diffs heard). */
  private diffMarks: Map<string, number> | null = null

  /** Another node's count, from its presence diff heard at `mark`. */
  setRemoteCount (node: string, count: number, mark: number): void {
    (this.diffMarks ??= new Map()).set(node, mark)
    const counts = this.remoteCounts ??= new Map()
    const before = counts.get(node) ?? 0
    if (count > 0) counts.set(node, count)
    else counts.delete(node)
    this.remoteSize += count - before
  }

  /**
   * Replace every other node's count with what the adapter read from the shared store, asked at
   * `readMark`: a node whose diff was heard after that keeps the diff's count (the read is older).
   */
  setRemoteCounts (counts: ReadonlyMap<string, number>, self: string, readMark: number): void {
    const next = new Map<string, number>()
    let size = 0
    const newer = (node: string): boolean => (this.diffMarks?.get(node) ?? -1) > readMark
    for (const [node, count] of counts) {
      if (node === self || !(count > 0) || newer(node)) continue
      next.set(node, count)
      size += count
    }
    if (this.diffMarks !== null) {
      for (const [node, mark] of this.diffMarks) {
        if (mark <= readMark) this.diffMarks.delete(node)
        else {
          const count = this.remoteCounts?.get(node) ?? 0
          if (count > 0) next.set(node, count)
          size += count
        }
      }
    }
    this.remoteCounts = next
    this.remoteSize = size
  }
}
