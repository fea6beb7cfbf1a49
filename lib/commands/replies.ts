// Every reply a command sends: an ack, a refusal (its text from refusals.ts), a frame its schema
// refused, a handler's failure. The one place a refusal goes out.
import type { TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { FastifyBaseLogger } from 'fastify'
import type { ErrorCode, MessageId } from '../../types/index.js'
import type { Connection } from '../connection.js'
import { RoomsError } from '../errors.js'
import type { RoomsParams } from '../options.js'
import { idOf, schemaErrorText } from '../protocol/client-frames.js'
import { ackFrame, errorFrame } from '../protocol/server-frames.js'
import { type Counters, tally } from '../stats.js'
import { refusalCode, type RefusalContext, refusalText, type RefusalCause } from '../refusals.js'

export class Replies {
  private readonly log: FastifyBaseLogger
  private readonly limits: RefusalContext
  private readonly refusals: Map<string, number>
  /** Told of every error frame, when tracing is on (the frame's span gets the code). */
  onRefused: ((conn: Connection, code: string, err?: unknown) => void) | null = null

  constructor (params: RoomsParams, log: FastifyBaseLogger, counters: Counters) {
    this.log = log
    this.refusals = counters.refusals
    this.limits = { maxRoomNameLength: params.maxRoomNameLength, maxRoomsPerConnection: params.maxRoomsPerConnection }
  }

  /** Acknowledge a frame that carried an `id` (a frame without one is not acked). */
  ack (conn: Connection, id: MessageId | undefined, data?: unknown): void {
    if (id !== undefined) conn.sendPayload(ackFrame(id, data))
  }

  refuse (conn: Connection, cause: RefusalCause, id: MessageId | undefined, room?: string): void {
    const ctx = room === undefined ? this.limits : { ...this.limits, room }
    this.error(conn, refusalCode(cause), refusalText(cause, ctx), id)
  }

  /** Every error frame goes out here: counted by code. */
  private error (conn: Connection, code: ErrorCode, text: string, id: MessageId | undefined, err?: unknown): void {
    tally(this.refusals, code)
    if (this.onRefused !== null) this.onRefused(conn, code, err)
    conn.sendPayload(errorFrame(code, text, id))
  }

  /** A frame that is not a message of this protocol: `text` says what is wrong with it. */
  malformed (conn: Connection, text: string, id: MessageId | undefined): void {
    this.error(conn, 'invalid_message', text, id)
  }

  /** A frame its schema refused: the first schema error. */
  invalid (conn: Connection, check: TypeCheck<TSchema>, message: Record<string, unknown>): void {
    this.malformed(conn, schemaErrorText(check, message), idOf(message))
  }

  /** A handler (or a members lookup) failed: a RoomsError is the client's answer; anything else is logged and internal_error. */
  failed (conn: Connection, err: unknown, type: string, id: MessageId | undefined): void {
    if (err instanceof RoomsError) {
      this.error(conn, err.code, err.message, id)
      return
    }
    this.log.error({ err, connectionId: conn.id, type }, 'a fastify.rooms handler threw')
    this.error(conn, 'internal_error', refusalText('internal_error', this.limits), id, err)
  }
}
