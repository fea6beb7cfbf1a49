// Grants: which rooms a session may join and publish to, from what `authenticate` returned
// (`{ user, grants }`). Compiled once per session into an exact set and a prefix list per
// operation, so a check is a Set lookup and a short loop, never a parse.
import { describe } from './options.js'

export type GrantOp = 'join' | 'publish'

/** Rooms one operation is allowed in. */
interface Matcher {
  all: boolean
  exact: Set<string>
  prefixes: string[]
}

export interface Grants {
  readonly join: Matcher
  readonly publish: Matcher
}

const OPS: ReadonlySet<unknown> = new Set(['join', 'publish'])

function matcher (): Matcher {
  return { all: false, exact: new Set(), prefixes: [] }
}

/** Does a key of `grants` granting `op` match `room`? */
export function granted (grants: Grants, op: GrantOp, room: string): boolean {
  const m = grants[op]
  if (m.all || m.exact.has(room)) return true
  for (const prefix of m.prefixes) if (room.startsWith(prefix)) return true
  return false
}

/**
 * Compile `{ key: ops[] }`: a key is a room name, a prefix ending in `*`, or `*`. Returns the
 * grants, or a string saying what is wrong with them (the session is then refused).
 */
export function compileGrants (value: unknown): Grants | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `grants must be an object of room keys to arrays of 'join' | 'publish', got ${describe(value)}`
  }
  const grants: Grants = { join: matcher(), publish: matcher() }
  for (const [key, ops] of Object.entries(value as Record<string, unknown>)) {
    if (key.length === 0) return 'grants: a key must be a room name, a prefix ending in "*", or "*"; got ""'
    if (!Array.isArray(ops)) return `grants[${JSON.stringify(key)}] must be an array of 'join' | 'publish', got ${describe(ops)}`
    for (const op of ops) {
      if (!OPS.has(op)) return `grants[${JSON.stringify(key)}] holds ${describe(op)}; the operations are 'join' and 'publish'`
      const m = grants[op as GrantOp]
      if (key === '*') m.all = true
      else if (key.endsWith('*')) m.prefixes.push(key.slice(0, -1))
      else m.exact.add(key)
    }
  }
  return grants
}
