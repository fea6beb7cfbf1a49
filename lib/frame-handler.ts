// Everything a client frame goes through, in order: size/binary (ws and here), rate limit,
// parse, schema, then the built-in types or an application handler. Frames of one connection
// are handled one at a time: while one waits on async work (a join's subscribe, an async
// handler), later frames wait in a small backlog, so replies keep the order of the requests.
import type { RawData } from 'ws'
import type { ErrorCode, MessageId } from '../types/index.js'
import type { RoomBroker } from './broker.js'
import type { Connection } from './connection.js'
import {
  chatFrame, ChatSchema, compile, idOf, isValidRoomName, JoinSchema, LeaveSchema, MembersSchema, parseFrame, schemaErrorText
} from './protocol.js'
import { ALLOW, CLOSE, countFrame, REFUSE, type RateVerdict } from './rate-limiter.js'
import { RoomsError } from './errors.js'
import { isPromise } from './async.js'
import type { JoinResult } from './broker.js'

const checkJoin = compile(JoinSchema)
const checkLeave = compile(LeaveSchema)
const checkChat = compile(ChatSchema)
const checkMembers = compile(MembersSchema)

/** How many frames may wait behind a slow one before the connection is closed (1008); bytes are bounded by maxBacklogBytes. */
const MAX_BACKLOG = 1024

export function createFrameHandler (broker: RoomBroker): (conn: Connection, data: RawData, isBinary: boolean) => void {
  const { rateLimitMax, rateLimitWindowMs, maxPayload, maxRoomNameLength, maxBacklogBytes } = broker.params

  function handleText (conn: Connection, text: string): Promise<void> | undefined {
    const parsed = parseFrame(text)
    if (!parsed.ok) {
      broker.replyError(conn, 'invalid_message', parsed.text, parsed.id)
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
        if (broker.historyLimits !== undefined && broker.isHistoryRoom(room)) return publishToHistory(conn, room, chat, id)
        broker.publish(room, chat, conn.id)
        broker.replyAck(conn, id)
        return undefined
      }
      case 'join': {
        if (!checkJoin.Check(message)) return invalid(conn, checkJoin, message)
        const { room, id, since } = message
        const joined = broker.tryJoin(conn, room, true, since)
        if (isPromise(joined)) return joined.then((result) => { settleJoin(conn, result, room, id) })
        settleJoin(conn, joined, room, id)
        return undefined
      }
      case 'members': {
        if (!checkMembers.Check(message)) return invalid(conn, checkMembers, message)
        const { room, id } = message
        if (!conn.rooms.has(room)) {
          settle(conn, isValidRoomName(room, maxRoomNameLength) ? 'not_in_room' : 'invalid_room', room, id)
          return undefined
        }
        return broker.membersOf(room).then(
          (answer) => { broker.replyAck(conn, id, answer) },
          (err: unknown) => { failed(conn, err, 'members', id) }
        )
      }
      case 'leave': {
        if (!checkLeave.Check(message)) return invalid(conn, checkLeave, message)
        const { room, id } = message
        settle(conn, isValidRoomName(room, maxRoomNameLength) ? broker.clientLeave(conn, room) : 'invalid_room', room, id)
        return undefined
      }
      default:
        return handleApplicationType(conn, message)
    }
  }

  function handleApplicationType (conn: Connection, message: Record<string, unknown> & { type: string }): Promise<void> | undefined {
    const handler = broker.handlers[message.type]
    if (handler === undefined) {
      broker.replyError(conn, 'invalid_message', `Invalid message format: unknown type ${JSON.stringify(message.type)}`, idOf(message))
      return undefined
    }
    // Registered after the server was ready, its schema still compiling: this frame waits for it.
    if (handler.check === undefined) return handler.compiled?.then(() => handleApplicationType(conn, message))
    if (!handler.check.Check(message)) {
      broker.replyError(conn, 'invalid_message', handler.check.errorText(message), idOf(message))
      return undefined
    }
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
      published = broker.publishToHistory(room, chat, conn.id)
    } catch (err) {
      return unavailable(conn, err, room, id)
    }
    if (!isPromise(published)) {
      broker.replyAck(conn, id, { offset: published.offset })
      return undefined
    }
    return published.then(
      ({ offset }) => { broker.replyAck(conn, id, { offset }) },
      (err: unknown) => { unavailable(conn, err, room, id) }
    )
  }

  function unavailable (conn: Connection, err: unknown, room: string, id: MessageId | undefined): undefined {
    broker.log.warn({ err, connectionId: conn.id, room }, 'a message to a history room could not be ordered; refused with unavailable')
    broker.replyError(conn, 'unavailable', `Unavailable: the history of room ${JSON.stringify(room)} cannot take messages now`, id)
    return undefined
  }

  /** A join's answer, then (in a history room) the messages that arrived during the join. */
  function settleJoin (conn: Connection, result: JoinResult, room: string, id: MessageId | undefined): void {
    if (typeof result === 'string') {
      broker.replyError(conn, result, refusalText(result, room), id)
      return
    }
    broker.replyAck(conn, id, result)
    broker.activateJoin(conn, room)
  }

  /** Ack with the handler's result; one that JSON cannot carry (a BigInt, a cycle, too deep) is the handler's error. */
  function ackResult (conn: Connection, value: unknown, type: string, id: MessageId | undefined): void {
    try {
      broker.replyAck(conn, id, value)
    } catch (err) {
      failed(conn, err, type, id)
    }
  }

  function invalid (conn: Connection, check: { Errors: any }, message: Record<string, unknown>): undefined {
    broker.replyError(conn, 'invalid_message', schemaErrorText(check as never, message), idOf(message))
    return undefined
  }

  function failed (conn: Connection, err: unknown, type: string, id: MessageId | undefined): undefined {
    if (err instanceof RoomsError) {
      broker.replyError(conn, err.code, err.message, id)
      return undefined
    }
    broker.log.error({ err, connectionId: conn.id, type }, 'a fastify.rooms handler threw')
    broker.replyError(conn, 'internal_error', 'Internal error', id)
    return undefined
  }

  function settle (conn: Connection, code: ErrorCode | undefined, room: string, id: MessageId | undefined): void {
    if (code === undefined) broker.replyAck(conn, id)
    else broker.replyError(conn, code, refusalText(code, room), id)
  }

  function refusalText (code: string, room: string): string {
    switch (code) {
      case 'invalid_room': return `Invalid room name: 1..${maxRoomNameLength} characters, no control characters`
      case 'too_many_rooms': return `Too many rooms: at most ${broker.params.maxRoomsPerConnection} per connection`
      case 'forbidden': return `Not allowed to join ${JSON.stringify(room)}`
      case 'not_in_room': return `Not in room ${JSON.stringify(room)}`
      case 'unavailable': return `Unavailable: the history of room ${JSON.stringify(room)} cannot be read now`
      default: return 'Internal error'
    }
  }

  /** A frame in its turn, with the rate limiter's verdict from when it arrived: handle, refuse, or close. */
  function handleInTurn (conn: Connection, text: string, verdict: RateVerdict): Promise<void> | undefined {
    if (verdict === ALLOW) return handleText(conn, text)
    if (verdict === REFUSE) {
      const parsed = parseFrame(text)
      broker.replyError(conn, 'rate_limited', 'Rate limit exceeded', parsed.ok ? idOf(parsed.message) : parsed.id)
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
    broker.messagesIn++
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
    if (verdict !== ALLOW) broker.rateLimited++
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
