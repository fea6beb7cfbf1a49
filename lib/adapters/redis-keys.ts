// Names of the Redis adapter's keys and channels. Every key and channel of one room carries the
// room in one hash tag (`{r:<room>}`), and every one of a user in `{u:<user>}`, so a room's keys,
// its history and its channel live in one slot of a Redis Cluster (scripts may touch them
// together, and sharded pub/sub reaches the shard that owns them). Names are escaped so a room
// with braces in its name cannot move its own tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D`.

const ESCAPES: Record<string, string> = { '%': '%25', '{': '%7B', '}': '%7D' }
const UNESCAPES: Record<string, string> = { '%25': '%', '%7B': '{', '%7D': '}' }

export function escapeTag (name: string): string {
  return name.replace(/[%{}]/g, (c) => ESCAPES[c])
}

export function unescapeTag (tagged: string): string {
  return tagged.replace(/%(25|7B|7D)/g, (code) => UNESCAPES[code])
}

export interface RoomKeys {
  channel: string
  members: string
  nodes: string
  stream: string
  meta: string
}

export class KeyNames {
  readonly prefix: string
  readonly all: string
  private readonly roomStart: string
  private readonly userStart: string

  constructor (prefix: string) {
    this.prefix = prefix
    this.all = `${prefix}:all`
    this.roomStart = `${prefix}:{r:`
    this.userStart = `${prefix}:{u:`
  }

  roomChannel (room: string): string {
    return `${this.roomStart}${escapeTag(room)}}:room`
  }

  room (room: string): RoomKeys {
    const base = `${this.roomStart}${escapeTag(room)}}`
    return { channel: `${base}:room`, members: `${base}:members`, nodes: `${base}:nodes`, stream: `${base}:stream`, meta: `${base}:meta` }
  }

  userChannel (userId: string): string {
    return `${this.userStart}${escapeTag(userId)}}:user`
  }

  /** The room of a room channel, or undefined for another channel. */
  roomOf (channel: string): string | undefined {
    if (!channel.startsWith(this.roomStart) || !channel.endsWith('}:room')) return undefined
    return unescapeTag(channel.slice(this.roomStart.length, -6))
  }

  /** The user of a user channel, or undefined for another channel. */
  userOf (channel: string): string | undefined {
    if (!channel.startsWith(this.userStart) || !channel.endsWith('}:user')) return undefined
    return unescapeTag(channel.slice(this.userStart.length, -6))
  }
}
