// Cluster-wide presence in Redis: per room a `members` hash (connectionId → nodeId \0 userJson)
// and a `nodes` hash of leases (nodeId → expiresAt:count). A node's members count as alive while its
// lease in that room is unexpired; the node renews its lease in every room it has members in each
// heartbeat (`presenceTtl / 4`), so a node that died without cleaning up (SIGKILL, power loss)
// leaves `members()` at most `presenceTtl` after its last heartbeat, and the first live node to see
// its expired lease purges its entries and, in the same script, announces them as left to the room
// (so every node with members there frames the leaves for its own members, once). A node that
// was only cut off and writes its entries again learns that it had been purged, and announces its
// members as joined again. Liveness lives in each room's own keys (one slot), never in
// a key of another slot, so the same scripts work on one Redis server and on a Redis Cluster.
//
// Counts: the lease carries the node's member count, written with each presence diff (once per
// interval in batched rooms) and each heartbeat; every heartbeat reads the other live nodes' counts
// back, which corrects diffs lost in an outage and drops the counts of dead nodes.
import type { Cluster, Redis } from 'ioredis'
import type { AdapterNode, PresenceDiff, RoomMember } from '../../types/index.js'
import { settlesWithin, withTimeout } from '../async.js'
import type { KeyNames } from './redis-keys.js'
import { encodeDiff, SEP, type SeqCounter } from './redis-codec.js'
import {
  ADD_MEMBER, LIVE_COUNTS, MEMBERS, OTHERS_COUNT, PRESENCE_DIFF, PURGE_DEAD_NODE, PURGE_OWN, ROOM_BEAT, WRITE_MEMBERS
} from './redis-scripts.js'

/** What presence needs of the adapter's connections (RedisLink). */
export interface PresenceLink {
  readonly node: AdapterNode
  readonly keys: KeyNames
  readonly presenceTtl: number
  /** PUBLISH on one server, SPUBLISH on a cluster. */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  /** No answer to the heartbeat for a while: nothing waits for Redis. */
  readonly stalled: boolean
  readonly closed: boolean
  /** The command connection when it can take commands now, else undefined. */
  ready (): Redis | Cluster | undefined
  /** The same, when a publication can go out now (not stalled), else undefined. */
  writable (): Redis | Cluster | undefined
  waitMs (wait: 'subscribe' | 'presenceDiff' | 'presenceRead'): number
  /** Count a publication that could not leave this node. */
  drop (): void
  down (reason: string, err?: Error): void
}

function noop (): void {}

function countsOf (flat: unknown): Map<string, number> {
  const counts = new Map<string, number>()
  if (!Array.isArray(flat)) return counts
  for (let i = 0; i + 1 < flat.length; i += 2) counts.set(String(flat[i]), Number(flat[i + 1]))
  return counts
}

export class RedisPresence {
  private readonly link: PresenceLink
  /** Numbers this node's diffs with its other publications on the room's channel. */
  private readonly seq: SeqCounter
  /** Rooms where a removal could not reach Redis: purged of our entries when it is back. */
  private dirtyRooms = new Set<string>()

  constructor (link: PresenceLink, seq: SeqCounter) {
    this.link = link
    this.seq = seq
  }

  private entry (member: RoomMember): string {
    return this.link.node.nodeId + SEP + JSON.stringify(member.user)
  }

  add (room: string, member: RoomMember): void {
    const pub = this.link.ready()
    // Not connected: restore() writes every local member when Redis is back.
    if (pub === undefined) return
    const { members, nodes } = this.link.keys.room(room)
    // Not awaited: the join must not wait for Redis, and Redis runs this before the join's diff,
    // published next on the same connection, so a node that saw the diff sees the member too.
    ADD_MEMBER.run(pub, [members, nodes], [member.connectionId, this.entry(member), this.link.node.nodeId, this.link.presenceTtl, this.link.node.localCount(room)])
      .catch((err: Error) => this.link.down('a presence write failed', err))
  }

  remove (room: string, connectionId: string): void {
    if (this.link.closed) return
    const pub = this.link.ready()
    if (pub === undefined) {
      this.dirtyRooms.add(room)
      return
    }
    pub.hdel(this.link.keys.room(room).members, connectionId).catch((err: Error) => {
      this.dirtyRooms.add(room)
      this.link.down('a presence removal failed', err)
    })
  }

  /**
   * Carry this node's joins and leaves of `room` to the other nodes. Never queued: without Redis it
   * is counted as dropped. The caller waits at most the presenceDiff bound; a diff that fails later
   * is still counted.
   */
  async publish (room: string, diff: PresenceDiff): Promise<void> {
    if (this.link.writable() === undefined) {
      this.link.drop()
      return
    }
    const sent = this.diff(room, diff).catch((err: Error) => {
      this.link.drop()
      this.link.down('a presence diff failed', err)
    })
    await settlesWithin(sent, this.link.waitMs('presenceDiff'))
  }

  /** Publish a diff on the room's channel and record this node's count, in one script. */
  private async diff (room: string, diff: PresenceDiff): Promise<void> {
    const pub = this.link.ready()
    if (pub === undefined) throw new Error('Redis is unavailable')
    const keys = this.link.keys.room(room)
    const message = this.seq.envelope('p', keys.channel, undefined, encodeDiff(diff))
    await PRESENCE_DIFF.run(pub, [keys.nodes], [this.link.node.nodeId, this.link.presenceTtl, diff.count, this.link.publishCommand, keys.channel, message])
  }

  /**
   * After a room subscription: the other live nodes' counts, so this node's first presence frame
   * has the right size. They only size that frame, so a join never waits for them longer than the
   * subscribe bound (not at all while Redis is stalled), and a failure is ignored.
   */
  async readCounts (room: string): Promise<void> {
    const pub = this.link.ready()
    if (pub === undefined || this.link.stalled) return
    const mark = this.link.node.presenceReadMark()
    const read = LIVE_COUNTS.run(pub, [this.link.keys.room(room).nodes], [this.link.node.nodeId])
      .then((counts) => this.link.node.presenceCounts(room, countsOf(counts), mark))
    await settlesWithin(read, this.link.waitMs('subscribe'))
  }

  /** Members on every live node, at most `limit`; without Redis, the part this node is sure of. */
  async members (room: string, limit: number | undefined): Promise<RoomMember[]> {
    const node = this.link.node
    // Stalled: no answer within presenceTtl / 2, so do not ask.
    if (this.link.stalled) return node.localMembers(room)
    const local = node.localMembers(room)
    const pub = this.link.ready()
    const wanted = limit === undefined ? Number.MAX_SAFE_INTEGER : limit - local.length
    if (pub === undefined || wanted <= 0) return limit === undefined ? local : local.slice(0, limit)
    const { members, nodes } = this.link.keys.room(room)
    const reply = await withTimeout(MEMBERS.run(pub, [members, nodes], [wanted, node.nodeId]), this.link.waitMs('presenceRead'), 'Redis').catch((err: Error) => {
      this.link.down('a members query failed', err)
      return undefined
    })
    if (!Array.isArray(reply)) return local
    const all = [...local]
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const value = String(reply[i + 1])
      try {
        all.push({ connectionId: String(reply[i]), user: JSON.parse(value.slice(value.indexOf(SEP) + 1)) })
      } catch {
        // not an entry we wrote; skip it
      }
    }
    return all
  }

  /** The room's members across live nodes, from their leases (this node's own count is exact). */
  async size (room: string): Promise<number | undefined> {
    const pub = this.link.ready()
    if (pub === undefined || this.link.stalled) return undefined
    const others = await withTimeout(OTHERS_COUNT.run(pub, [this.link.keys.room(room).nodes], [this.link.node.nodeId]), this.link.waitMs('presenceRead'), 'Redis').catch(() => undefined)
    if (typeof others !== 'number') return undefined
    return this.link.node.localCount(room) + others
  }

  /** Heartbeat of every local room: renew leases, read the others' counts, heal lost hashes, purge dead nodes. */
  beat (pub: Redis | Cluster): void {
    const node = this.link.node
    const ttl = this.link.presenceTtl
    for (const room of node.localRooms()) {
      const sample = node.localMembers(room)[0]
      if (sample === undefined) continue
      const keys = this.link.keys.room(room)
      const history = node.historyLimits !== undefined && node.isHistoryRoom(room)
      const scriptKeys = history ? [keys.members, keys.nodes, keys.meta] : [keys.members, keys.nodes]
      const mark = node.presenceReadMark()
      ROOM_BEAT.run(pub, scriptKeys, [node.nodeId, ttl, node.localCount(room), sample.connectionId, node.historyLimits?.ttlMs ?? 0])
        .then((reply) => {
          const [present, dead, live] = reply as [number, string[], unknown[]]
          node.presenceCounts(room, countsOf(live), mark)
          // Our entries there expired or were deleted while we have members there: put them back.
          if (present === 0) this.writeRoom(pub, room).catch(noop)
          // The node's members are announced as left by the script itself, once for the whole room.
          for (const deadNode of dead) {
            if (deadNode !== node.nodeId) PURGE_DEAD_NODE.run(pub, [keys.members, keys.nodes], [deadNode, this.link.publishCommand, keys.channel]).catch(noop)
          }
        }, noop)
    }
  }

  get hasDirtyRooms (): boolean {
    return this.dirtyRooms.size > 0
  }

  /**
   * After a reconnect: forget our entries in rooms where a leave was missed, then write every
   * local member again (Redis may have restarted empty).
   */
  async restore (pub: Redis | Cluster): Promise<void> {
    const dirty = this.dirtyRooms
    this.dirtyRooms = new Set()
    const prefix = this.link.node.nodeId + SEP
    // Purges first, awaited: a script Redis does not know yet is sent again after the others,
    // and must not delete the entries written next.
    await Promise.all(Array.from(dirty, async (room) => {
      await PURGE_OWN.run(pub, [this.link.keys.room(room).members], [prefix]).catch((err: Error) => {
        this.dirtyRooms.add(room)
        throw err
      })
    }))
    await Promise.all(Array.from(this.link.node.localRooms(), async (room) => await this.writeRoom(pub, room)))
  }

  /**
   * Write every local member of `room` and this node's lease there. When another node had taken
   * this one for dead (cut off from Redis, or stalled, for longer than presenceTtl) and announced
   * its members as left, they are announced as joined again.
   */
  private async writeRoom (pub: Redis | Cluster, room: string): Promise<void> {
    const node = this.link.node
    const local = node.localMembers(room)
    if (local.length === 0) return
    const args: Array<string | number> = [node.nodeId, this.link.presenceTtl, node.localCount(room)]
    for (const member of local) args.push(member.connectionId, this.entry(member))
    const { members, nodes } = this.link.keys.room(room)
    const purged = await WRITE_MEMBERS.run(pub, [members, nodes], args)
    if (purged !== 1) return
    const changes = local.map((m) => ({ joined: true, connectionId: m.connectionId, user: m.user }))
    await this.diff(room, { count: node.localCount(room), changes })
  }

  /** Leave the cluster's view now rather than after presenceTtl: our entries and leases go. */
  async leaveAll (pub: Redis | Cluster): Promise<void> {
    const node = this.link.node
    const done: Array<Promise<unknown>> = []
    for (const room of node.localRooms()) {
      const { members, nodes } = this.link.keys.room(room)
      const ids = node.localMembers(room).map((m) => m.connectionId)
      if (ids.length > 0) done.push(pub.hdel(members, ...ids))
      done.push(pub.hdel(nodes, node.nodeId))
    }
    await Promise.allSettled(done)
  }
}
