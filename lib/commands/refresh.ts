// `refresh`: a new token for the live connection. `authenticate` runs again (with the upgrade's
// headers, ip and url); the same user id swaps the connection's user, grants and expiry at once,
// and rooms the new grants no longer open to it are left. The connection id, its other rooms and
// its presence stay as they were, so no member sees it leave and join. Every refusal is
// `forbidden` and leaves the old session as it was.
import type { Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { MessageId } from '../../types/index.js'
import { isPromise } from '../async.js'
import { type AuthenticateResult, normaliseSession, redact } from '../authenticate.js'
import type { Connection } from '../connection.js'
import { granted } from '../grants.js'
import type { RefreshSchema } from '../protocol/client-frames.js'
import type { Command, CommandContext } from './context.js'

export const refresh: Command<Static<typeof RefreshSchema>> = (ctx, conn, { token, id }) => {
  const authenticate = ctx.params.authenticate
  if (authenticate === undefined || typeof token !== 'string' || token.length === 0) return refuse(ctx, conn, id, 'no token')
  // The upgrade request when it was kept, else the small copy of it kept for this (accept.ts).
  const request = (conn.request ?? conn.authRequest) as FastifyRequest
  let result: ReturnType<typeof authenticate>
  try {
    result = authenticate(token, request)
  } catch (err) {
    return threw(ctx, conn, id, token, err)
  }
  if (!isPromise(result)) return apply(ctx, conn, id, result)
  return settle(result, ctx.params.authenticateTimeout).then(
    (settled) => {
      if (settled === TIMED_OUT) refuse(ctx, conn, id, 'authenticate did not settle within authenticateTimeout')
      else apply(ctx, conn, id, settled)
    },
    (err: unknown) => { threw(ctx, conn, id, token, err) }
  )
}

const TIMED_OUT = Symbol('timed out')

/** The result, or TIMED_OUT once `timeoutMs` passed (0: no limit): a hung authenticate must not hold the connection's frames forever. */
function settle<T> (result: Promise<T>, timeoutMs: number): Promise<T | typeof TIMED_OUT> {
  if (timeoutMs <= 0) return result
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => { timer = setTimeout(() => { resolve(TIMED_OUT) }, timeoutMs).unref() })
  return Promise.race([result, timeout]).finally(() => { clearTimeout(timer) })
}

function apply (ctx: CommandContext, conn: Connection, id: MessageId | undefined, result: AuthenticateResult): void {
  const session = normaliseSession(result, ctx.log)
  if (session === undefined) return refuse(ctx, conn, id, 'authenticate refused the token')
  // A refresh renews a session; it never turns the connection into someone else.
  if (session.user.id !== conn.user.id) return refuse(ctx, conn, id, 'the token is for another user')
  const expiresAt = session.expiresAt
  if (expiresAt !== undefined && expiresAt <= Date.now()) return refuse(ctx, conn, id, 'the token has already expired')
  if (!conn.open) return
  const before = conn.grants
  conn.user = session.user
  conn.userJson = JSON.stringify(session.user)
  const grants = session.grants ?? null
  conn.grants = grants
  ctx.hub.moveExpiry(conn, expiresAt)
  if (grants !== null) {
    // Rooms the old session could join and the new one cannot. A room the server put the
    // connection in without a grant stays: server-side joins are not the grants' business.
    for (const room of [...conn.rooms]) {
      if (!granted(grants, 'join', room) && (before === null || granted(before, 'join', room))) ctx.hub.leave(conn, room, { tell: true })
    }
  }
  ctx.replies.ack(conn, id, expiresAt === undefined ? {} : { expiresAt })
}

function threw (ctx: CommandContext, conn: Connection, id: MessageId | undefined, token: string, err: unknown): void {
  ctx.log.info({ err: redact(err, token), connectionId: conn.id }, 'authenticate threw on a refresh; refused, the session is unchanged')
  ctx.replies.refuse(conn, 'forbidden:refresh', id)
}

function refuse (ctx: CommandContext, conn: Connection, id: MessageId | undefined, why: string): void {
  ctx.log.info({ connectionId: conn.id }, `refresh refused (${why}); the session is unchanged`)
  ctx.replies.refuse(conn, 'forbidden:refresh', id)
}
