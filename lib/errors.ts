// Every error the plugin raises, declared once. Refusals before the upgrade carry their HTTP
// status; Fastify's error handler turns them into `{ statusCode, code, error, message }`.
import createError from '@fastify/error'
import type { ErrorCode } from '../types/index.js'

export const InvalidOptionError = createError<'FST_WS_ROOMS_INVALID_OPTION', [string, string]>(
  'FST_WS_ROOMS_INVALID_OPTION', 'fastify-ws-rooms: invalid option "%s": %s')

export const OriginRefusedError = createError('FST_WS_ROOMS_ORIGIN_REFUSED', 'Origin not allowed', 403)
export const TokenMissingError = createError('FST_WS_ROOMS_TOKEN_MISSING', 'Authentication required', 401)
export const TokenRefusedError = createError('FST_WS_ROOMS_TOKEN_REFUSED', 'Invalid token', 403)
export const SubprotocolRequiredError = createError('FST_WS_ROOMS_SUBPROTOCOL_REQUIRED',
  'Offer the rooms.v1 subprotocol (beside bearer.<token>)', 400)
export const TooManyConnectionsFromIpError = createError('FST_WS_ROOMS_TOO_MANY_CONNECTIONS_FROM_IP',
  'Too many connections from this address', 429)
export const ServerFullError = createError('FST_WS_ROOMS_SERVER_FULL', 'Too many connections', 503)
export const AuthenticationBusyError = createError('FST_WS_ROOMS_AUTHENTICATION_BUSY',
  'Too many pending authentications', 503)
export const DrainingError = createError('FST_WS_ROOMS_DRAINING',
  'Service restart: this server takes no new connections, connect again', 503)
export const AuthenticationTimeoutError = createError('FST_WS_ROOMS_AUTHENTICATION_TIMEOUT',
  'Authentication timed out', 503)

export const UnknownConnectionError = createError<'FST_WS_ROOMS_UNKNOWN_CONNECTION', [string]>(
  'FST_WS_ROOMS_UNKNOWN_CONNECTION', 'No connection "%s" on this node')
export const InvalidRoomError = createError('FST_WS_ROOMS_INVALID_ROOM',
  'Room names are 1..%d UTF-16 code units without control characters')
export const TooManyRoomsError = createError<'FST_WS_ROOMS_TOO_MANY_ROOMS', [number]>(
  'FST_WS_ROOMS_TOO_MANY_ROOMS', 'A connection may join at most %d rooms')
export const TokenExpiredError = createError('FST_WS_ROOMS_TOKEN_EXPIRED', 'Token expired', 403)
export const UnavailableError = createError<'FST_WS_ROOMS_UNAVAILABLE', [string, { cause: unknown }?]>(
  'FST_WS_ROOMS_UNAVAILABLE', 'Unavailable: %s', 503)
export const NoHistoryError = createError<'FST_WS_ROOMS_NO_HISTORY', [string]>(
  'FST_WS_ROOMS_NO_HISTORY', 'Room %j keeps no history (see the history option)')
export const InvalidHandlerError = createError<'FST_WS_ROOMS_INVALID_HANDLER', [string, string]>(
  'FST_WS_ROOMS_INVALID_HANDLER', 'rooms.handle("%s"): %s')

/**
 * Throw from a `rooms.handle` handler to refuse the frame with one of the contract's error codes
 * (the client gets `{ type: 'error', code, text, id }`) instead of `internal_error`.
 */
export class RoomsError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string) {
    super(message)
    this.name = 'RoomsError'
    this.code = code
  }
}

/**
 * A failure of the history or of the other nodes, as the UnavailableError an API call rejects with:
 * its message (after `context`, when given) and the original as `cause`.
 */
export function unavailableFrom (err: unknown, context?: string): InstanceType<typeof UnavailableError> {
  const message = String((err as Error | undefined)?.message ?? err)
  return new UnavailableError(context === undefined ? message : `${context}: ${message}`, { cause: err })
}
