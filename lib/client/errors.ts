// The one error type the client rejects with and emits: a `code` to branch on, from the server
// (`forbidden`, `not_in_room`, ...) or from the client itself (`timeout`, `disconnected`, ...).
import type { ClientErrorCode, ErrorCode, ErrorMessage } from '../../types/client.js'

export interface RoomsClientErrorDetails {
  status?: number
  room?: string
  frame?: ErrorMessage
  cause?: unknown
}

export class RoomsClientError extends Error {
  declare readonly name: 'RoomsClientError'
  readonly code: ErrorCode | ClientErrorCode
  readonly status?: number
  readonly room?: string
  readonly frame?: ErrorMessage

  constructor (code: ErrorCode | ClientErrorCode, message: string, details: RoomsClientErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    Object.defineProperty(this, 'name', { value: 'RoomsClientError', configurable: true, writable: true })
    this.code = code
    if (details.status !== undefined) this.status = details.status
    if (details.room !== undefined) this.room = details.room
    if (details.frame !== undefined) this.frame = details.frame
  }
}

/** What a rooms server means by each status it refuses an upgrade with. */
const REFUSAL_REASONS: Record<number, string> = {
  400: 'the request was not a rooms upgrade (no rooms.v1 subprotocol?)',
  401: 'the server requires a token and none was sent (see the token option)',
  403: 'the token, or the Origin of the page, was refused',
  404: 'nothing serves WebSocket upgrades at this path',
  429: 'too many connections from this address',
  503: 'the server is full, draining, or cannot authenticate now'
}

/**
 * The error of an upgrade refused with HTTP `status`, when the WebSocket implementation shows the
 * status (`ws` in Node does; a browser never does).
 */
export function upgradeRefusedError (status: number, code: ErrorCode | ClientErrorCode): RoomsClientError {
  const reason = REFUSAL_REASONS[status]
  return new RoomsClientError(code, `The server refused the upgrade with HTTP ${status}${reason === undefined ? '' : `: ${reason}`}`, { status })
}
