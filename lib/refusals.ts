// Every refusal the plugin gives, in one table: the text a client's error frame carries and the
// error an API call throws come from the same row, so the two cannot drift apart. `unavailable`
// has two causes (a history room that cannot be read, one that cannot take messages), each its row.
import type { ErrorCode } from '../types/index.js'
import { InvalidRoomError, RoomsError, TooManyRoomsError, UnavailableError } from './errors.js'

export type RefusalCause = Exclude<ErrorCode, 'unavailable' | 'invalid_message'> | 'unavailable:read' | 'unavailable:publish' |
  'forbidden:publish' | 'forbidden:refresh'

export interface RefusalContext {
  room?: string
  maxRoomNameLength: number
  maxRoomsPerConnection: number
}

interface Refusal {
  code: ErrorCode
  text: (ctx: RefusalContext) => string
  /** The error an API call throws for it; without one, a RoomsError with the code and text. */
  error?: (ctx: RefusalContext) => Error
}

const name = (ctx: RefusalContext): string => JSON.stringify(ctx.room)

const REFUSALS: Readonly<Record<RefusalCause, Refusal>> = {
  invalid_room: {
    code: 'invalid_room',
    text: (ctx) => `Invalid room name: 1..${ctx.maxRoomNameLength} characters, no control characters`,
    error: (ctx) => new InvalidRoomError(ctx.maxRoomNameLength)
  },
  too_many_rooms: {
    code: 'too_many_rooms',
    text: (ctx) => `Too many rooms: at most ${ctx.maxRoomsPerConnection} per connection`,
    error: (ctx) => new TooManyRoomsError(ctx.maxRoomsPerConnection)
  },
  forbidden: { code: 'forbidden', text: (ctx) => `Not allowed to join ${name(ctx)}` },
  'forbidden:publish': { code: 'forbidden', text: (ctx) => `Not allowed to publish to ${name(ctx)}` },
  'forbidden:refresh': { code: 'forbidden', text: () => 'Refresh refused: the session is unchanged' },
  not_in_room: { code: 'not_in_room', text: (ctx) => `Not in room ${name(ctx)}` },
  rate_limited: { code: 'rate_limited', text: () => 'Rate limit exceeded' },
  internal_error: { code: 'internal_error', text: () => 'Internal error' },
  'unavailable:read': {
    code: 'unavailable',
    text: (ctx) => `Unavailable: the history of room ${name(ctx)} cannot be read now`,
    error: () => new UnavailableError('the history of this room cannot be read now')
  },
  'unavailable:publish': {
    code: 'unavailable',
    text: (ctx) => `Unavailable: the history of room ${name(ctx)} cannot take messages now`
  }
}

/** The error code a client's error frame carries for `cause`. */
export function refusalCode (cause: RefusalCause): ErrorCode {
  return REFUSALS[cause].code
}

/** The text of a client's error frame for `cause`. */
export function refusalText (cause: RefusalCause, ctx: RefusalContext): string {
  return REFUSALS[cause].text(ctx)
}

/** The error an API call (fastify.rooms.join, …) throws for `cause`. */
export function refusalError (cause: RefusalCause, ctx: RefusalContext): Error {
  const row = REFUSALS[cause]
  return row.error !== undefined ? row.error(ctx) : new RoomsError(row.code, row.text(ctx))
}
