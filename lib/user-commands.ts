// Cluster-wide control of one user's connections (CONTRACT §11): disconnect, join and leave every
// connection of a user. A node applies a command to its own connections of that user; the adapter
// carries it to the nodes where the user is connected (each subscribes to the user's channel while
// the user is connected there), so no node needs to know where a user is.
import type { DisconnectOptions, UserCommand } from '../types/index.js'
import type { RoomBroker } from './broker.js'
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

/** Apply a command to this node's connections of `userId`; resolves once every join took effect. */
export async function applyUserCommand (broker: RoomBroker, userId: string, command: UserCommand): Promise<void> {
  const conns = broker.connectionsOf(userId)
  if (conns.length === 0) return
  switch (command.op) {
    case 'disconnect':
      for (const conn of conns) conn.close(command.code, command.reason)
      return
    case 'leave':
      for (const conn of conns) broker.serverLeave(conn, command.room)
      return
    case 'join':
      await Promise.all(conns.map(async (conn) => {
        if (!conn.open) return
        const result = await broker.serverJoin(conn, command.room)
        if (typeof result === 'string') {
          broker.log.warn({ connectionId: conn.id, userId, room: command.room, code: result }, 'joinUser: a connection of the user could not join')
        }
      }))
  }
}
