// `join`: the ack goes out once the join took effect; in a history room the messages of the join
// (missed ones with `since`, then what arrived meanwhile) follow it.
import type { Static } from '@sinclair/typebox'
import { isPromise } from '../async.js'
import type { JoinSchema } from '../protocol/client-frames.js'
import type { Command, CommandContext } from './context.js'

export const join: Command<Static<typeof JoinSchema>> = (ctx, conn, { room, id, since }) => {
  const joined = ctx.hub.join(conn, room, {
    authorize: true,
    since,
    ack: (data) => {
      if (since !== undefined) countRecovery(ctx, data)
      ctx.replies.ack(conn, id, data)
    }
  })
  if (isPromise(joined)) return joined.then((refusal) => { if (refusal !== undefined) ctx.replies.refuse(conn, refusal, id, room) })
  if (joined !== undefined) ctx.replies.refuse(conn, joined, id, room)
}

/** A rejoin with `since` in a history room: did it recover what was missed (the metrics read it). */
function countRecovery (ctx: CommandContext, data: unknown): void {
  const recovered = (data as { recovered?: unknown } | undefined)?.recovered
  if (recovered === true) ctx.counters.recovered++
  else if (recovered === false) ctx.counters.notRecovered++
}
