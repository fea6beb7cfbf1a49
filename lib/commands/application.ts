// A frame of a type the application registered with `fastify.rooms.handle`: its handler runs,
// and the frame is acked with what it returned (or resolved to); a throw or rejection is the
// handler's failure (a RoomsError's code, else internal_error).
import type { MessageId } from '../../types/index.js'
import { isPromise } from '../async.js'
import type { Connection } from '../connection.js'
import { idOf } from '../protocol/client-frames.js'
import type { CommandContext } from './context.js'

export function runApplication (ctx: CommandContext, conn: Connection, message: Record<string, unknown> & { type: string }): void | Promise<void> {
  const handler = ctx.handlers.get(message.type)
  if (handler === undefined) {
    ctx.replies.malformed(conn, `Invalid message format: unknown type ${JSON.stringify(message.type)}`, idOf(message))
    return
  }
  // Registered after the server was ready, its schema still compiling: this frame waits for it.
  if (handler.check === undefined) return handler.compiled?.then(() => runApplication(ctx, conn, message))
  if (!handler.check.Check(message)) {
    ctx.replies.malformed(conn, handler.check.errorText(message), idOf(message))
    return
  }
  const id = idOf(message)
  let result: unknown
  try {
    result = handler.run(conn, message)
  } catch (err) {
    ctx.replies.failed(conn, err, message.type, id)
    return
  }
  if (isPromise(result)) {
    return result.then(
      (value) => { ackResult(ctx, conn, value, message.type, id) },
      (err: unknown) => { ctx.replies.failed(conn, err, message.type, id) }
    )
  }
  ackResult(ctx, conn, result, message.type, id)
}

/** Ack with the handler's result; one that JSON cannot carry (a BigInt, a cycle, too deep) is the handler's error. */
function ackResult (ctx: CommandContext, conn: Connection, value: unknown, type: string, id: MessageId | undefined): void {
  try {
    ctx.replies.ack(conn, id, value)
  } catch (err) {
    ctx.replies.failed(conn, err, type, id)
  }
}
