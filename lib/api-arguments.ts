// The checks of fastify.rooms' arguments: a bad argument throws at once, with a message that
// names the call and the argument, before anything is sent anywhere.
import type { DisconnectOptions, UserCommand } from '../types/index.js'
import { isValidRoomName } from './protocol/room-names.js'
import { InvalidRoomError } from './errors.js'
import { describe } from './options.js'

const DEFAULT_REASON = 'Disconnected by the server'

export function checkUserId (call: string, userId: unknown): asserts userId is string {
  if (typeof userId !== 'string') throw new TypeError(`fastify-ws-rooms: ${call}(userId, …): userId must be a string, got ${describe(userId)}`)
}

export function checkRoomArgument (call: string, room: unknown, maxLength: number): asserts room is string {
  if (typeof room !== 'string') throw new TypeError(`fastify-ws-rooms: ${call}(userId, room): room must be a string, got ${describe(room)}`)
  if (!isValidRoomName(room, maxLength)) throw new InvalidRoomError(maxLength)
}

export function checkDisconnect (options: DisconnectOptions | undefined): UserCommand {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new TypeError(`fastify-ws-rooms: disconnectUser(userId, options): options must be an object, got ${describe(options)}`)
  }
  const code = options?.code ?? 4000
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 4000 || code > 4999) {
    throw new RangeError(`fastify-ws-rooms: disconnectUser(userId, { code }): code must be an integer from 4000 to 4999, got ${describe(code)}`)
  }
  const reason = options?.reason ?? DEFAULT_REASON
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new TypeError(`fastify-ws-rooms: disconnectUser(userId, { reason }): reason must be a string of at most 123 bytes, got ${describe(reason)}`)
  }
  return { op: 'disconnect', code, reason }
}

export function checkMembersLimit (limit: unknown): asserts limit is number | undefined {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || (limit as number) < 0)) {
    throw new TypeError(`fastify-ws-rooms: members(room, { limit }): limit must be an integer >= 0, got ${String(limit)}`)
  }
}

/** history(room, { after, limit }): after defaults to 0 (from the oldest kept message). */
export function checkHistoryOptions (options: { after?: number, limit?: number } | undefined): { after: number, limit: number | undefined } {
  const after = options?.after ?? 0
  const limit = options?.limit
  if (!Number.isSafeInteger(after) || after < 0) throw new TypeError(`fastify-ws-rooms: history(): after must be an integer >= 0, got ${String(after)}`)
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new TypeError(`fastify-ws-rooms: history(): limit must be an integer >= 0, got ${String(limit)}`)
  }
  return { after, limit }
}
