// Who is in a room across nodes: the adapter's answer, cut to a limit, and the room's size for the
// `members` request. One answer per room is reused on this node for MEMBERS_ANSWER_MS, so members
// asking at about the same time cost one lookup (with Redis, two scripts that scan the room), not
// one each; any join or leave this node hears of in the room drops it (the hub clears
// Room.membersAnswer).
import type { RoomMember } from '../types/index.js'
import type { ClusterLink } from './cluster-link.js'
import type { Hub } from './hub.js'
import type { RoomsParams } from './options.js'
import type { MembersAnswer } from './room.js'

/** How long (ms) a room's answer to the `members` request is reused on this node. */
const MEMBERS_ANSWER_MS = 1000

export class MembersQuery {
  private readonly hub: Hub
  private readonly link: ClusterLink
  private readonly membersLimit: number

  constructor (hub: Hub, link: ClusterLink, params: RoomsParams) {
    this.hub = hub
    this.link = link
    this.membersLimit = params.membersLimit
  }

  /** The room's members on every node; at most `limit` of them when given. */
  async members (room: string, limit?: number): Promise<RoomMember[]> {
    const members = await this.link.members(room, limit)
    return limit !== undefined && members.length > limit ? members.slice(0, limit) : members
  }

  /** The `members` request: at most membersLimit members, and the room's size across nodes. */
  withSize (room: string): Promise<MembersAnswer> {
    const local = this.hub.room(room)
    if (local === undefined) return this.lookUp(room)
    const now = Date.now()
    const reused = local.membersAnswer
    if (reused !== undefined && now - reused.at < MEMBERS_ANSWER_MS) return reused.answer
    const answer = this.lookUp(room)
    const entry = { at: now, answer }
    local.membersAnswer = entry
    answer.catch(() => { if (local.membersAnswer === entry) local.membersAnswer = undefined })
    return answer
  }

  private async lookUp (room: string): Promise<MembersAnswer> {
    const limit = this.membersLimit
    const [members, counted] = await Promise.all([this.members(room, limit), this.link.roomSize(room)])
    const known = this.hub.room(room)?.size ?? 0
    // A full answer is its own count; a capped one takes the best count there is.
    const size = members.length < limit ? members.length : Math.max(members.length, counted ?? known)
    return { size, members }
  }
}
