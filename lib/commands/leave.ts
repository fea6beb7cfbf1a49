// `leave`: refused with not_in_room when the connection is not a member.
import type { Static } from '@sinclair/typebox'
import type { LeaveSchema } from '../protocol/client-frames.js'
import { isValidRoomName } from '../protocol/room-names.js'
import type { Command } from './context.js'

export const leave: Command<Static<typeof LeaveSchema>> = (ctx, conn, { room, id }) => {
  if (!isValidRoomName(room, ctx.params.maxRoomNameLength)) ctx.replies.refuse(conn, 'invalid_room', id, room)
  else if (!ctx.hub.leave(conn, room)) ctx.replies.refuse(conn, 'not_in_room', id, room)
  else ctx.replies.ack(conn, id)
}
