// A message becomes its payload string once, here, whoever sends it (broadcast, sendToUser,
// broadcastAll, RoomConnection.send): every receiver on every node gets that same string.

const NOT_JSON = 'fastify-ws-rooms: the message must be serializable to JSON'

export function serialize (message: unknown): string {
  const payload = JSON.stringify(message)
  if (typeof payload !== 'string') throw new TypeError(NOT_JSON)
  return payload
}

/**
 * A history room's message: a JSON object without its own `offset` (the room gives it one). It
 * names its room: a payload without `room` gets `"room":R`, so a client can tell which room's
 * stream every frame belongs to whatever the application sends; one whose `room` names another
 * room is refused (its receivers would count it in that room's stream). Serialized once per
 * broadcast: the room name is spliced into the one payload every receiver gets.
 */
export function serializeHistoryMessage (room: string, message: unknown): string {
  const value = message !== null && typeof message === 'object' && typeof (message as { toJSON?: unknown }).toJSON === 'function'
    ? (message as { toJSON: () => unknown }).toJSON()
    : message
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('fastify-ws-rooms: a message to a history room must be a JSON object')
  }
  if (Object.hasOwn(value, 'offset')) {
    throw new TypeError('fastify-ws-rooms: a message to a history room must not have its own "offset" (the room assigns it)')
  }
  const own = (value as { room?: unknown }).room
  if (own !== undefined && own !== room) {
    throw new TypeError(`fastify-ws-rooms: a message to history room ${JSON.stringify(room)} must not name another room in "room" (got ${typeof own === 'string' ? JSON.stringify(own) : typeof own})`)
  }
  const payload = serialize(value)
  if (payload[0] !== '{') throw new TypeError('fastify-ws-rooms: a message to a history room must be a JSON object')
  if (own !== undefined) return payload
  // No room field (JSON leaves out a `room` that is undefined): add it.
  return `${payload.slice(0, -1)}${payload.length === 2 ? '' : ','}"room":${JSON.stringify(room)}}`
}

/**
 * A history room's payload (a JSON object) cut before its closing brace, so the store can splice
 * `"offset":N` in without parsing it: `${head}${sep}"offset":N}`.
 */
export function splitForOffset (payload: string): { head: string, sep: string } {
  return { head: payload.slice(0, -1), sep: payload.length === 2 ? '' : ',' }
}
