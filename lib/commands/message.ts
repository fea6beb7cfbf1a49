// `message`: a chat to a room the sender is in, serialized once and sent to every other member on
// every node (see publish.ts). In a history room it is acked with its offset once the history gave
// it one, or refused with unavailable when the history cannot take it.
import type { Static } from '@sinclair/typebox'
import type { MessageId } from '../../types/index.js'
import { isPromise } from '../async.js'
import type { Connection } from '../connection.js'
import type { ChatSchema } from '../protocol/client-frames.js'
import { isValidRoomName } from '../protocol/room-names.js'
import { chatFrame } from '../protocol/server-frames.js'
import type { Published } from '../publish.js'
import type { Command, CommandContext } from './context.js'

export const message: Command<Static<typeof ChatSchema>> = (ctx, conn, { room, text, id }) => {
  if (!conn.rooms.has(room)) {
    ctx.replies.refuse(conn, isValidRoomName(room, ctx.params.maxRoomNameLength) ? 'not_in_room' : 'invalid_room', id, room)
    return
  }
  const chat = chatFrame(room, conn.userJson, text)
  if (ctx.hub.isHistoryRoom(room)) return toHistoryRoom(ctx, conn, room, chat, id)
  ctx.publisher.toRoom(room, chat, conn.id)
  ctx.replies.ack(conn, id)
}

function toHistoryRoom (ctx: CommandContext, conn: Connection, room: string, chat: string, id: MessageId | undefined): Promise<void> | undefined {
  let published: Published | Promise<Published>
  try {
    published = ctx.publisher.toHistoryRoom(room, chat, conn.id)
  } catch (err) {
    return unavailable(ctx, conn, err, room, id)
  }
  if (!isPromise(published)) {
    ctx.replies.ack(conn, id, { offset: published.offset })
    return undefined
  }
  return published.then(
    ({ offset }) => { ctx.replies.ack(conn, id, { offset }) },
    (err: unknown) => { unavailable(ctx, conn, err, room, id) }
  )
}

function unavailable (ctx: CommandContext, conn: Connection, err: unknown, room: string, id: MessageId | undefined): undefined {
  ctx.log.warn({ err, connectionId: conn.id, room }, 'a message to a history room could not be ordered; refused with unavailable')
  ctx.replies.refuse(conn, 'unavailable:publish', id, room)
  return undefined
}
