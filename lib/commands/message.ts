// `message`: a chat to a room the sender is in, serialized once and sent to every other member on
// every node (see publish.ts). In a history room it is acked with its offset once the history gave
// it one, or refused with unavailable when the history cannot take it. Before anything goes out,
// the session's grants and then `authorizePublish` may refuse it (forbidden); neither costs a
// thing when not configured.
import type { Static } from '@sinclair/typebox'
import type { MessageId } from '../../types/index.js'
import { isPromise } from '../async.js'
import type { Connection } from '../connection.js'
import { granted } from '../grants.js'
import type { ChatSchema } from '../protocol/client-frames.js'
import { isValidRoomName } from '../protocol/room-names.js'
import { chatFrame } from '../protocol/server-frames.js'
import type { Published } from '../publish.js'
import type { Command, CommandContext } from './context.js'

type ChatFrame = Static<typeof ChatSchema>

export const message: Command<ChatFrame> = (ctx, conn, frame) => {
  const { room, id } = frame
  if (!conn.rooms.has(room)) {
    ctx.replies.refuse(conn, isValidRoomName(room, ctx.params.maxRoomNameLength) ? 'not_in_room' : 'invalid_room', id, room)
    return
  }
  if (conn.grants !== null && !granted(conn.grants, 'publish', room)) {
    ctx.replies.refuse(conn, 'forbidden:publish', id, room)
    return
  }
  if (ctx.params.authorizePublish !== undefined) return authorizeThenPublish(ctx, conn, frame)
  return publish(ctx, conn, frame)
}

function publish (ctx: CommandContext, conn: Connection, { room, text, id }: ChatFrame): Promise<void> | undefined {
  const chat = chatFrame(room, conn.userJson, text)
  if (ctx.hub.isHistoryRoom(room)) return toHistoryRoom(ctx, conn, room, chat, id)
  ctx.publisher.toRoom(room, chat, conn.id)
  ctx.replies.ack(conn, id)
  return undefined
}

function authorizeThenPublish (ctx: CommandContext, conn: Connection, frame: ChatFrame): Promise<void> | undefined {
  const { room, id } = frame
  const refused = (err: unknown): undefined => {
    ctx.log.error({ err, connectionId: conn.id, room }, 'authorizePublish threw')
    ctx.replies.refuse(conn, 'internal_error', id)
    return undefined
  }
  const decided = (allowed: boolean): Promise<void> | undefined => {
    if (allowed !== true) {
      ctx.replies.refuse(conn, 'forbidden:publish', id, room)
      return undefined
    }
    // The sender may have been taken out of the room while the answer was awaited.
    if (!conn.open) return undefined
    if (!conn.rooms.has(room)) {
      ctx.replies.refuse(conn, 'not_in_room', id, room)
      return undefined
    }
    return publish(ctx, conn, frame)
  }
  let allowed: boolean | Promise<boolean>
  try {
    allowed = ctx.params.authorizePublish!(conn.user, room, frame)
  } catch (err) {
    return refused(err)
  }
  if (!isPromise(allowed)) return decided(allowed)
  return allowed.then(decided, refused)
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
