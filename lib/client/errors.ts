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
