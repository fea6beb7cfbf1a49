// What `authenticate` returned, made into a session: the user, and when the session ends when it
// returned `{ user, expiresAt }`. Anything else refuses the upgrade, with a log line saying why.
import type { FastifyBaseLogger } from 'fastify'
import type { AuthenticatedSession, RoomUser } from '../types/index.js'

export type AuthenticateResult = RoomUser | AuthenticatedSession | null | undefined

export interface Session {
  user: RoomUser
  /** ms since the epoch; undefined when the session does not expire. */
  expiresAt?: number
}

/** The session `authenticate` gave, or undefined when it refused (null, or nothing a user can be made of). */
export function normaliseSession (result: AuthenticateResult, log: FastifyBaseLogger): Session | undefined {
  if (result === null || result === undefined) return undefined
  if (typeof result !== 'object') return invalidResult(log)
  // An object with a string id is always the user, whatever else it carries.
  if (typeof (result as RoomUser).id === 'string') return { user: result as RoomUser }
  const { user, expiresAt } = result as { user?: RoomUser, expiresAt?: unknown }
  if (user === null || typeof user !== 'object' || typeof user.id !== 'string') return invalidResult(log)
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
    log.error({ expiresAt: typeof expiresAt }, 'authenticate returned { user, expiresAt } with an expiresAt that is not a finite number (ms since the epoch); upgrade refused')
    return undefined
  }
  return { user, expiresAt }
}

function invalidResult (log: FastifyBaseLogger): undefined {
  log.error('authenticate must return an object with a string id, { user, expiresAt }, or null; upgrade refused')
  return undefined
}
