// Every reply a command sends: an ack, a refusal (its text from refusals.ts), a frame its schema
// refused, a handler's failure. The one place a refusal goes out.
import type { TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { FastifyBaseLogger } from 'fastify'
import type { MessageId } from '../../types/index.js'
import type { Connection } from '../connection.js'
import { RoomsError } from '../errors.js'
import type { RoomsParams } from '../options.js'
import { idOf, schemaErrorText } from '../protocol/client-frames.js'
import { ackFrame, errorFrame } from '../protocol/server-frames.js'
import { refusalCode, type RefusalContext, refusalText, type RefusalCause } from '../refusals.js'

export class Replies {
  private readonly log: FastifyBaseLogger
  private readonly limits: RefusalContext

  constructor (params: RoomsParams, log: FastifyBaseLogger) {
    this.log = log
    this.limits = { maxRoomNameLength: params.maxRoomNameLength, maxRoomsPerConnection: params.maxRoomsPerConnection }
  }

  /** Acknowledge a frame that carried an `id` (a frame without one is not acked). */
  ack (conn: Connection, id: MessageId | undefined, data?: unknown): void {
    if (id !== undefined) conn.sendPayload(ackFrame(id, data))
  }

  refuse (conn: Connection, cause: RefusalCause, id: MessageId | undefined, room?: string): void {
    const ctx = room === undefined ? this.limits : { ...this.limits, room }
    conn.sendPayload(errorFrame(refusalCode(cause), refusalText(cause, ctx), id))
  }

  /** A frame that is not a message of this protocol: `text` says what is wrong with it. */
  malformed (conn: Connection, text: string, id: MessageId | undefined): void {
    conn.sendPayload(errorFrame('invalid_message', text, id))
  }

  /** A frame its schema refused: the first schema error. */
  invalid (conn: Connection, check: TypeCheck<TSchema>, message: Record<string, unknown>): void {
    this.malformed(conn, schemaErrorText(check, message), idOf(message))
  }

  /** A handler (or a members lookup) failed: a RoomsError is the client's answer; anything else is logged and internal_error. */
  failed (conn: Connection, err: unknown, type: string, id: MessageId | undefined): void {
    if (err instanceof RoomsError) {
      conn.sendPayload(errorFrame(err.code, err.message, id))
      return
    }
    this.log.error({ err, connectionId: conn.id, type }, 'a fastify.rooms handler threw')
    this.refuse(conn, 'internal_error', id)
  }
}
