// Names of the Redis adapter's keys and channels. Every key and channel of one room carries the
// room in one hash tag (`{r:<room>}`), and every one of a user in `{u:<user>}`, so a room's keys,
// its history and its channel live in one slot of a Redis Cluster (scripts may touch them
// together, and sharded pub/sub reaches the shard that owns them). Names are escaped so a room
// with braces in its name cannot move its own tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D`.
// A lone surrogate (legal in a room name or a user id, a JS string being UTF-16) becomes `%uD800`
// and so on: UTF-8 cannot carry one, and ioredis would write each as U+FFFD, so "\ud800",
// "\udfff" and "\ufffd" would share their keys and channels. As `%` is always escaped, the
// mapping stays one-to-one; names without `%`, braces or lone surrogates are used as they are.

const ESCAPES: Record<string, string> = { '%': '%25', '{': '%7B', '}': '%7D' }
const UNESCAPES: Record<string, string> = { '%25': '%', '%7B': '{', '%7D': '}' }
// Without the `u` flag a character class matches single UTF-16 code units.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

function escapeSurrogate (unit: string): string {
  return `%u${unit.charCodeAt(0).toString(16).toUpperCase()}`
}

export function escapeTag (name: string): string {
  return name.replace(/[%{}]/g, (c) => ESCAPES[c]).replace(LONE_SURROGATE, escapeSurrogate)
}

export function unescapeTag (tagged: string): string {
  return tagged.replace(/%(25|7B|7D|uD[89A-F][0-9A-F]{2})/g, (code) =>
    code[1] === 'u' ? String.fromCharCode(parseInt(code.slice(2), 16)) : UNESCAPES[code])
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
