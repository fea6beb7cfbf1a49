// What `authenticate` returned, made into a session: the user, when the session ends when it
// returned `{ user, expiresAt }`, and its grants when it returned `{ user, grants }`. Anything
// else refuses the upgrade (or the refresh), with a log line saying why.
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { AuthenticatedSession, RoomUser } from '../types/index.js'
import { compileGrants, type Grants } from './grants.js'

export type AuthenticateResult = RoomUser | AuthenticatedSession | null | undefined

export interface Session {
  user: RoomUser
  /** ms since the epoch; undefined when the session does not expire. */
  expiresAt?: number
  /** undefined without grants: every room may be joined and published to (as far as grants go). */
  grants?: Grants
}

/**
 * What `authenticate` is given on a refresh when the upgrade request was not kept: its headers,
 * ip and url, a few hundred bytes rather than the whole request. `server` and `log` (the Fastify
 * instance and its logger, which a token check often uses: `request.server.jwt.verify`) come from
 * a prototype every connection of the route shares, so they cost nothing per connection.
 */
export interface RefreshRequest {
  readonly headers: FastifyRequest['headers']
  readonly ip: string
  readonly url: string
  readonly server: FastifyRequest['server']
  readonly log: FastifyBaseLogger
}

export type RefreshRequestShared = Pick<RefreshRequest, 'server' | 'log'>

export function refreshRequest (request: FastifyRequest, shared: RefreshRequestShared): RefreshRequest {
  const copy = Object.create(shared) as { -readonly [K in keyof RefreshRequest]: RefreshRequest[K] }
  copy.headers = request.headers
  copy.ip = request.ip
  copy.url = request.url
  return copy
}

/** The session `authenticate` gave, or undefined when it refused (null, or nothing a user can be made of). */
export function normaliseSession (result: AuthenticateResult, log: FastifyBaseLogger): Session | undefined {
  if (result === null || result === undefined) return undefined
  if (typeof result !== 'object') return invalidResult(log)
  // An object with a string id is always the user, whatever else it carries.
  if (typeof (result as RoomUser).id === 'string') return { user: result as RoomUser }
  const { user, expiresAt, grants } = result as { user?: RoomUser, expiresAt?: unknown, grants?: unknown }
  if (user === null || typeof user !== 'object' || typeof user.id !== 'string') return invalidResult(log)
  // { user, grants } may leave expiresAt out; { user, expiresAt } must give a number.
  if ((expiresAt !== undefined || grants === undefined) && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))) {
    log.error({ expiresAt: typeof expiresAt }, 'authenticate returned { user, expiresAt } with an expiresAt that is not a finite number (ms since the epoch); refused')
    return undefined
  }
  const session: Session = { user }
  if (expiresAt !== undefined) session.expiresAt = expiresAt as number
  if (grants !== undefined) {
    const compiled = compileGrants(grants)
    if (typeof compiled === 'string') {
      log.error(`authenticate returned invalid grants (${compiled}); refused`)
      return undefined
    }
    session.grants = compiled
  }
  return session
}

function invalidResult (log: FastifyBaseLogger): undefined {
  log.error('authenticate must return an object with a string id, { user, expiresAt?, grants? }, or null; refused')
  return undefined
}

/** A log-safe copy of an error thrown by `authenticate`: the token is cut out of its message and stack. */
export function redact (err: unknown, token: string): unknown {
  if (!(err instanceof Error)) return { message: String(err).split(token).join('[redacted]') }
  // Same prototype, so the logger's error serializer still names the type (TypeError, ...);
  // nothing of the original but these fields, any of which might hold the token.
  const copy = Object.create(Object.getPrototypeOf(err) as object) as Error & { code?: unknown }
  copy.message = err.message.split(token).join('[redacted]')
  copy.stack = err.stack?.split(token).join('[redacted]')
  const code = (err as { code?: unknown }).code
  if (code !== undefined) copy.code = code
  return copy
}
