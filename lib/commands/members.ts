// `members`: who is in a room the connection is in, across nodes, with the room's size.
import type { Static } from '@sinclair/typebox'
import type { MembersSchema } from '../protocol/client-frames.js'
import { isValidRoomName } from '../protocol/room-names.js'
import type { Command } from './context.js'

export const members: Command<Static<typeof MembersSchema>> = (ctx, conn, { room, id }) => {
  if (!conn.rooms.has(room)) {
    ctx.replies.refuse(conn, isValidRoomName(room, ctx.params.maxRoomNameLength) ? 'not_in_room' : 'invalid_room', id, room)
    return
  }
  return ctx.members.withSize(room).then(
    (answer) => { ctx.replies.ack(conn, id, answer) },
    (err: unknown) => { ctx.replies.failed(conn, err, 'members', id) }
  )
}
