// The checks before the upgrade, run in `preValidation` so the WebSocket handler stays
// synchronous: a drain, capacity, Origin (cross-site WebSocket hijacking), then the token and
// `authenticate`. Each refusal is a real HTTP response; nothing is allocated for a connection.
import type { FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify'
import type { Admission } from './admission.js'
import { isPromise } from './async.js'
import { type AuthenticateResult, normaliseSession, redact, type Session } from './authenticate.js'
import { corkUntilFlush } from './frame-writer.js'
import type { RoomsParams } from './options.js'
import { type Counters, tally } from './stats.js'
import { originHost, ProxyHints } from './proxy-hints.js'
import {
  AuthenticationBusyError, AuthenticationTimeoutError, DrainingError, OriginRefusedError, TokenExpiredError, SubprotocolRequiredError, ServerFullError, TokenMissingError, TokenRefusedError,
  TooManyConnectionsFromIpError
} from './errors.js'

/** Where the handshake leaves the authenticated user for the WebSocket handler. */
export const kRoomsUser = Symbol('fastify-ws-rooms.user')
/** Where it leaves the session's expiry (§11), when `authenticate` returned `{ user, expiresAt }`. */
export const kRoomsExpiresAt = Symbol('fastify-ws-rooms.expiresAt')
/** Where it leaves the session's compiled grants, when `authenticate` returned some. */
export const kRoomsGrants = Symbol('fastify-ws-rooms.grants')
/** Marks an upgrade request as ours, so subprotocol selection answers `rooms.v1`. */
export const kRoomsUpgrade = Symbol('fastify-ws-rooms.upgrade')

export const SUBPROTOCOL = 'rooms.v1'
const BEARER_PROTOCOL_PREFIX = 'bearer.'
const BEARER_HEADER = /^Bearer\s+(\S+)\s*$/i

/** The subprotocols the client offered, trimmed; empty when it offered none. */
function offeredProtocols (request: FastifyRequest): string[] {
  const header = request.headers['sec-websocket-protocol']
  return typeof header === 'string' ? header.split(',').map((protocol) => protocol.trim()) : []
}

/** The token from the first of: `?token=`, `Authorization: Bearer`, a `bearer.<token>` subprotocol. */
export function extractToken (request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined
  let token = query?.token
  if (Array.isArray(token)) token = token[0]
  if (typeof token === 'string' && token.length > 0) return token

  const authorization = request.headers.authorization
  if (authorization !== undefined) {
    const match = BEARER_HEADER.exec(authorization)
    if (match !== null) return match[1]
  }

  for (const protocol of offeredProtocols(request)) {
    if (protocol.startsWith(BEARER_PROTOCOL_PREFIX) && protocol.length > BEARER_PROTOCOL_PREFIX.length) {
      return protocol.slice(BEARER_PROTOCOL_PREFIX.length)
    }
  }
  return undefined
}

// An authority as a Host header carries it: a bracketed IPv6 literal or a plain name, then an
// optional port. Anything else (userinfo, a path, spaces) would make URL parsing pick some other host.
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~]+)(?::[0-9]*)?$/

/**
 * Same-origin: the Origin's host and port equal the request's host (behind a trusted proxy, the
 * forwarded host: see proxy-hints). A missing Origin is a non-browser client.
 */
function isSameOrigin (origin: string | undefined, request: FastifyRequest): boolean {
  if (origin === undefined) return true
  const host = originHost(request)
  if (!AUTHORITY.test(host)) return false
  try {
    const originUrl = new URL(origin)
    // Compare under the Origin's scheme so default ports (:80, :443) normalise the same way on both sides.
    return originUrl.host === new URL(`${originUrl.protocol}//${host}`).host
  } catch {
    return false
  }
}

/**
 * The `preValidation` hook. Written with `done` rather than as an async function: with a sync
 * `authenticate` and a static origin rule no promise is made, which keeps the cost of a
 * connection close to a bare ws server's. User callbacks may still return promises.
 */
export interface HandshakeDeps {
  params: RoomsParams
  admission: Admission
  counters: Counters
}

export function createHandshake ({ params, admission, counters }: HandshakeDeps): preValidationHookHandler {
  const origins = params.origins
  let pendingAuthentications = 0
  const proxyHints = new ProxyHints()
  // Sockets are counted only for a limit that needs them.
  const countSockets = params.maxConnections > 0 || params.maxConnectionsPerIp > 0

  function originAllowed (request: FastifyRequest): boolean | Promise<boolean> {
    const origin = request.headers.origin
    if (origins === null) return true
    if (origins === undefined) return isSameOrigin(origin, request)
    if (typeof origins === 'function') return origins(origin, request)
    if (origin === undefined) return params.allowMissingOrigin
    return origins.has(origin)
  }

  /**
   * Count the request against maxConnections / maxConnectionsPerIp until it is over. An upgrade's
   * socket carries that one connection, refused or not, so it holds the slot until it closes;
   * a plain GET of the path holds it until its response ends, as its keep-alive socket (maybe a
   * proxy's, shared by many clients) goes on to carry other requests.
   */
  function holdSlot (request: FastifyRequest, reply: FastifyReply): void {
    if (request.ws) {
      const socket = request.raw.socket as typeof request.raw.socket | null | undefined
      if (socket !== undefined && socket !== null) admission.admit(request.ip, socket)
    } else {
      admission.admit(request.ip, reply.raw)
    }
  }

  return function roomsHandshake (request, reply, done) {
    function refuse (err: unknown): void {
      counters.rejectedUpgrades++
      tally(counters.upgradesRefused, statusOf(err))
      done(err as Error)
    }

    // done() runs the rest of the request synchronously: never call it inside a try.
    function accept (session: Session | undefined): void {
      if (session !== undefined) {
        (request as unknown as Record<symbol, unknown>)[kRoomsUser] = session.user
        if (session.expiresAt !== undefined) (request as unknown as Record<symbol, unknown>)[kRoomsExpiresAt] = session.expiresAt
        if (session.grants !== undefined) (request as unknown as Record<symbol, unknown>)[kRoomsGrants] = session.grants
      }
      ;(request.raw as unknown as Record<symbol, unknown>)[kRoomsUpgrade] = true
      // The 101 response and the welcome frame then leave in one write, not two.
      corkUntilFlush(request.raw.socket)
      done()
    }

    function authenticated (result: AuthenticateResult): void {
      const valid = normaliseSession(result, request.log)
      if (valid === undefined) refuse(new TokenRefusedError())
      else if (valid.expiresAt !== undefined && valid.expiresAt <= Date.now()) refuse(new TokenExpiredError())
      else accept(valid)
    }

    function authenticationThrew (token: string, err: unknown): void {
      request.log.info({ err: redact(err, token) }, 'authenticate threw; upgrade refused')
      refuse(new TokenRefusedError())
    }

    function afterOrigin (allowed: boolean): void {
      if (allowed !== true) {
        // Only the same-origin default compares with a host, and only it can be a proxy's doing.
        if (origins === undefined) proxyHints.sameOriginRefused(request)
        else request.log.info({ origin: request.headers.origin }, 'WebSocket upgrade refused: Origin not allowed')
        return refuse(new OriginRefusedError())
      }
      // A client that offers subprotocols must get one back; the only one we may answer is rooms.v1
      // (never the bearer token), so an offer without it could not complete the handshake.
      const protocols = offeredProtocols(request)
      if (protocols.length > 0 && !protocols.includes(SUBPROTOCOL)) return refuse(new SubprotocolRequiredError())
      const authenticate = params.authenticate
      if (authenticate === undefined) return accept(undefined)
      const token = extractToken(request)
      if (token === undefined) return refuse(new TokenMissingError())
      if (params.maxPendingAuthentications > 0 && pendingAuthentications >= params.maxPendingAuthentications) {
        return refuse(new AuthenticationBusyError())
      }
      let result: ReturnType<typeof authenticate>
      try {
        result = authenticate(token, request)
      } catch (err) {
        return authenticationThrew(token, err)
      }
      if (!isPromise(result)) return authenticated(result)
      pendingAuthentications++
      // Whichever comes first, the result or the timeout, settles the upgrade; the other is ignored.
      let settled = false
      const timeoutMs = params.authenticateTimeout
      const timer = timeoutMs > 0
        ? setTimeout(() => {
          settled = true
          pendingAuthentications--
          request.log.warn({ authenticateTimeout: timeoutMs }, 'authenticate did not settle within authenticateTimeout; upgrade refused')
          refuse(new AuthenticationTimeoutError())
        }, timeoutMs).unref()
        : undefined
      result.then((user) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        pendingAuthentications--
        authenticated(user)
      }, (err: unknown) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        pendingAuthentications--
        authenticationThrew(token, err)
      })
    }

    // A draining node sends everyone elsewhere, before any other check.
    if (admission.draining) {
      reply.header('retry-after', String(admission.retryAfterSeconds()))
      return refuse(new DrainingError())
    }
    if (params.maxConnections > 0 && admission.admittedSockets >= params.maxConnections) return refuse(new ServerFullError())
    if (params.maxConnectionsPerIp > 0) {
      proxyHints.checkForwardedFor(request, params.maxConnectionsPerIp)
      if (admission.admittedFrom(request.ip) >= params.maxConnectionsPerIp) {
        request.log.info({ ip: request.ip, maxConnectionsPerIp: params.maxConnectionsPerIp },
          'WebSocket upgrade refused: too many connections from this address')
        return refuse(new TooManyConnectionsFromIpError())
      }
    }
    if (countSockets) holdSlot(request, reply)
    let allowed: boolean | Promise<boolean>
    try {
      allowed = originAllowed(request)
    } catch (err) {
      return refuse(err)
    }
    if (isPromise(allowed)) allowed.then(afterOrigin, refuse)
    else afterOrigin(allowed)
  }
}

/** The HTTP status Fastify answers a refusal with: the error's own, else 500. */
function statusOf (err: unknown): number {
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500
}

type HandleProtocols = (protocols: Set<string>, request: unknown) => string | false

/**
 * Answer `rooms.v1` on our route and never echo a `bearer.<token>` subprotocol back; other
 * routes of a shared @fastify/websocket keep their own choice (ws's default: the first offered).
 */
export function selectSubprotocol (previous: HandleProtocols | null | undefined): HandleProtocols {
  return function handleProtocols (protocols, request) {
    if ((request as Record<symbol, unknown>)[kRoomsUpgrade] === true) return protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false
    if (typeof previous === 'function') return previous(protocols, request)
    for (const protocol of protocols) if (!protocol.startsWith('bearer.')) return protocol
    return false
  }
}

/**
 * The route's onResponse: an upgrade answered with an HTTP response (refused by our handshake
 * or by any hook before it, such as @fastify/under-pressure's) has its socket closed. The
 * websocket plugin does so only when its own onRequest hook ran, which a hook registered before
 * it and failing the request skips; the socket would then stay open for as long as the client
 * keeps it, and fastify.close() would wait for it.
 */
export function closeRefusedUpgrade (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  if (request.headers.upgrade !== undefined) request.raw.socket?.destroy()
  done()
}

/** The route's request serializer: the default fields, with the token cut out of the URL. */
export function redactTokenFromUrl (url: string): string {
  const query = url.indexOf('?')
  if (query === -1) return url
  const search = new URLSearchParams(url.slice(query + 1))
  if (!search.has('token')) return url
  search.set('token', '[redacted]')
  return `${url.slice(0, query)}?${search.toString()}`
}
