// Everything a client frame goes through, in order: size/binary (ws and here), rate limit,
// parse, schema, then the built-in types or an application handler. Frames of one connection
// are handled one at a time: while one waits on async work (a join's subscribe, an async
// handler), later frames wait in a small backlog, so replies keep the order of the requests.
import type { RawData } from 'ws'
import type { ErrorCode, MessageId } from '../types/index.js'
import type { FastifyBaseLogger } from 'fastify'
import type { HandlerRegistry } from './commands/registry.js'
import type { Hub } from './hub.js'
import type { MembersQuery } from './members-query.js'
import type { RoomsParams } from './options.js'
import type { Publisher } from './publish.js'
import type { Counters } from './stats.js'
import type { Connection } from './connection.js'
import { ChatSchema, compile, idOf, JoinSchema, LeaveSchema, MembersSchema, parseFrame, schemaErrorText } from './protocol/client-frames.js'
import { isValidRoomName } from './protocol/room-names.js'
import { ackFrame, chatFrame, errorFrame } from './protocol/server-frames.js'
import { ALLOW, CLOSE, countFrame, REFUSE, type RateVerdict } from './rate-limiter.js'
import { RoomsError } from './errors.js'
import { refusalCode, refusalText, type RefusalCause } from './refusals.js'
import { isPromise } from './async.js'

const checkJoin = compile(JoinSchema)
const checkLeave = compile(LeaveSchema)
const checkChat = compile(ChatSchema)
const checkMembers = compile(MembersSchema)

/** How many frames may wait behind a slow one before the connection is closed (1008); bytes are bounded by maxBacklogBytes. */
const MAX_BACKLOG = 1024

export interface FrameHandlerDeps {
  params: RoomsParams
  log: FastifyBaseLogger
  counters: Counters
  hub: Hub
  publisher: Publisher
  members: MembersQuery
  handlers: HandlerRegistry
}

export function createFrameHandler ({ params, log, counters, hub, publisher, members, handlers }: FrameHandlerDeps): (conn: Connection, data: RawData, isBinary: boolean) => void {
  const { rateLimitMax, rateLimitWindowMs, maxPayload, maxRoomNameLength, maxRoomsPerConnection, maxBacklogBytes } = params

  function replyError (conn: Connection, code: ErrorCode, text: string, id: MessageId | undefined): void {
    conn.sendPayload(errorFrame(code, text, id))
  }

  function replyAck (conn: Connection, id: MessageId | undefined, data?: unknown): void {
    if (id !== undefined) conn.sendPayload(ackFrame(id, data))
  }

  function handleText (conn: Connection, text: string): Promise<void> | undefined {
    const parsed = parseFrame(text)
    if (!parsed.ok) {
      replyError(conn, 'invalid_message', parsed.text, parsed.id)
      return undefined
    }
    const message = parsed.message
    switch (message.type) {
      case 'message': {
        if (!checkChat.Check(message)) return invalid(conn, checkChat, message)
        const { room, text: chatText, id } = message
        if (!conn.rooms.has(room)) {
          settle(conn, isValidRoomName(room, maxRoomNameLength) ? 'not_in_room' : 'invalid_room', room, id)
          return undefined
        }
        const chat = chatFrame(room, conn.userJson, chatText)
        if (hub.isHistoryRoom(room)) return publishToHistory(conn, room, chat, id)
        publisher.toRoom(room, chat, conn.id)
        replyAck(conn, id)
        return undefined
      }
      case 'join': {
        if (!checkJoin.Check(message)) return invalid(conn, checkJoin, message)
        const { room, id, since } = message
        // The ack goes out when the join took effect; in a history room the messages of the join follow it.
        const joined = hub.join(conn, room, { authorize: true, since, ack: (data) => { replyAck(conn, id, data) } })
        if (isPromise(joined)) return joined.then((refusal) => { if (refusal !== undefined) refuse(conn, refusal, room, id) })
        if (joined !== undefined) refuse(conn, joined, room, id)
        return undefined
      }
      case 'members': {
        if (!checkMembers.Check(message)) return invalid(conn, checkMembers, message)
        const { room, id } = message
        if (!conn.rooms.has(room)) {
          settle(conn, isValidRoomName(room, maxRoomNameLength) ? 'not_in_room' : 'invalid_room', room, id)
          return undefined
        }
        return members.withSize(room).then(
          (answer) => { replyAck(conn, id, answer) },
          (err: unknown) => { failed(conn, err, 'members', id) }
        )
      }
      case 'leave': {
        if (!checkLeave.Check(message)) return invalid(conn, checkLeave, message)
        const { room, id } = message
        const cause = !isValidRoomName(room, maxRoomNameLength) ? 'invalid_room' : hub.leave(conn, room) ? undefined : 'not_in_room'
        settle(conn, cause, room, id)
        return undefined
      }
      default:
        return handleApplicationType(conn, message)
    }
  }

  function handleApplicationType (conn: Connection, message: Record<string, unknown> & { type: string }): Promise<void> | undefined {
    const handler = handlers.get(message.type)
    if (handler === undefined) {
      replyError(conn, 'invalid_message', `Invalid message format: unknown type ${JSON.stringify(message.type)}`, idOf(message))
      return undefined
    }
    if (!handler.check.Check(message)) return invalid(conn, handler.check, message)
    const id = idOf(message)
    let result: unknown
    try {
      result = handler.run(conn, message)
    } catch (err) {
      return failed(conn, err, message.type, id)
    }
    if (isPromise(result)) {
      return result.then(
        (value) => { ackResult(conn, value, message.type, id) },
        (err: unknown) => { failed(conn, err, message.type, id) }
      )
    }
    ackResult(conn, result, message.type, id)
    return undefined
  }

  /** A chat message to a history room: acked with its offset once the history gave it one (§9). */
  function publishToHistory (conn: Connection, room: string, chat: string, id: MessageId | undefined): Promise<void> | undefined {
    let published
    try {
      published = publisher.toHistoryRoom(room, chat, conn.id)
    } catch (err) {
      return unavailable(conn, err, room, id)
    }
    if (!isPromise(published)) {
      replyAck(conn, id, { offset: published.offset })
      return undefined
    }
    return published.then(
      ({ offset }) => { replyAck(conn, id, { offset }) },
      (err: unknown) => { unavailable(conn, err, room, id) }
    )
  }

  function unavailable (conn: Connection, err: unknown, room: string, id: MessageId | undefined): undefined {
    log.warn({ err, connectionId: conn.id, room }, 'a message to a history room could not be ordered; refused with unavailable')
    refuse(conn, 'unavailable:publish', room, id)
    return undefined
  }

  /** Ack with the handler's result; one that JSON cannot carry (a BigInt, a cycle, too deep) is the handler's error. */
  function ackResult (conn: Connection, value: unknown, type: string, id: MessageId | undefined): void {
    try {
      replyAck(conn, id, value)
    } catch (err) {
      failed(conn, err, type, id)
    }
  }

  function invalid (conn: Connection, check: { Errors: any }, message: Record<string, unknown>): undefined {
    replyError(conn, 'invalid_message', schemaErrorText(check as never, message), idOf(message))
    return undefined
  }

  function failed (conn: Connection, err: unknown, type: string, id: MessageId | undefined): undefined {
    if (err instanceof RoomsError) {
      replyError(conn, err.code, err.message, id)
      return undefined
    }
    log.error({ err, connectionId: conn.id, type }, 'a fastify.rooms handler threw')
    refuse(conn, 'internal_error', undefined, id)
    return undefined
  }

  function settle (conn: Connection, cause: RefusalCause | undefined, room: string, id: MessageId | undefined): void {
    if (cause === undefined) replyAck(conn, id)
    else refuse(conn, cause, room, id)
  }

  function refuse (conn: Connection, cause: RefusalCause, room: string | undefined, id: MessageId | undefined): void {
    replyError(conn, refusalCode(cause), refusalText(cause, { room, maxRoomNameLength, maxRoomsPerConnection }), id)
  }

  /** A frame in its turn, with the rate limiter's verdict from when it arrived: handle, refuse, or close. */
  function handleInTurn (conn: Connection, text: string, verdict: RateVerdict): Promise<void> | undefined {
    if (verdict === ALLOW) return handleText(conn, text)
    if (verdict === REFUSE) {
      const parsed = parseFrame(text)
      refuse(conn, 'rate_limited', undefined, parsed.ok ? idOf(parsed.message) : parsed.id)
    } else {
      conn.close(1008, 'Rate limit exceeded')
    }
    return undefined
  }

  /** Handle frames that waited behind an async one, until the backlog is empty or another one waits. */
  function drain (conn: Connection): void {
    const backlog = conn.backlog
    if (backlog === null) return // closed meanwhile: the backlog was dropped
    let next = 0
    while (next < backlog.length && conn.open) {
      const { text, verdict } = backlog[next++]
      conn.backlogBytes -= text.length
      const pending = handleInTurn(conn, text, verdict)
      if (pending !== undefined) {
        backlog.splice(0, next)
        pending.then(() => drain(conn), () => drain(conn))
        return
      }
    }
    conn.dropBacklog()
  }

  return function onFrame (conn: Connection, data: RawData, isBinary: boolean): void {
    if (!conn.open || conn.closeQueued) return
    const now = Date.now()
    conn.lastSeen = now
    conn.spoke = true
    counters.messagesIn++
    if (isBinary) {
      conn.close(1003, 'Binary frames are not accepted')
      return
    }
    // ws already enforces maxPayload; this guards a @fastify/websocket the user set up with a larger limit.
    const text = (data as Buffer).length > maxPayload ? null : data.toString()
    if (text === null) {
      conn.close(1009, 'Frame too large')
      return
    }
    // Counted on arrival, applied in turn: replies and the 1008 close keep the order of the frames.
    const verdict = rateLimitMax > 0 ? countFrame(conn, now, rateLimitMax, rateLimitWindowMs) : ALLOW
    if (verdict !== ALLOW) counters.rateLimited++
    if (conn.backlog !== null) {
      // Counted in UTF-16 code units (what the strings hold), at most 2 bytes each on the heap.
      if (conn.backlog.length >= MAX_BACKLOG || conn.backlogBytes + text.length > maxBacklogBytes) {
        conn.close(1008, 'Too many frames waiting')
        return
      }
      conn.backlogBytes += text.length
      conn.backlog.push({ text, verdict })
      if (verdict === CLOSE) conn.closeQueued = true
      return
    }
    const pending = handleInTurn(conn, text, verdict)
    if (pending !== undefined) {
      conn.backlog = []
      pending.then(() => drain(conn), () => drain(conn))
    }
  }
}
