// Every frame the server sends, built as a string so each is serialized exactly once. Strings are
// escaped with JSON.stringify; users arrive pre-serialized.
import type { ErrorCode, MessageId } from '../../types/index.js'

export function welcomeFrame (connectionId: string, userJson: string, expiresAt?: number): string {
  const expiry = expiresAt === undefined ? '' : `,"expiresAt":${expiresAt}`
  return `{"type":"system","event":"welcome","text":"Connected to WebSocket server","connectionId":${JSON.stringify(connectionId)},"user":${userJson}${expiry}}`
}

export function joinEventFrame (room: string, userJson: string): string {
  return `{"type":"system","event":"join","room":${JSON.stringify(room)},"user":${userJson},"text":"User joined room"}`
}

export function leaveEventFrame (room: string, userJson: string): string {
  return `{"type":"system","event":"leave","room":${JSON.stringify(room)},"user":${userJson},"text":"User left room"}`
}

/** §10: the users (serialized) who joined and left a `batched` room during one interval, and its size across nodes. */
export function presenceFrame (room: string, joined: string[], left: string[], size: number): string {
  return `{"type":"system","event":"presence","room":${JSON.stringify(room)},"joined":[${joined.join(',')}],"left":[${left.join(',')}],"size":${size}}`
}

/** The server joined this connection to `room`; in a history room with the join's position (where recovery starts from). */
export function addedFrame (room: string, position?: { epoch: string, offset: number }): string {
  const at = position === undefined ? '' : `,"epoch":${JSON.stringify(position.epoch)},"offset":${position.offset}`
  return `{"type":"system","event":"added","room":${JSON.stringify(room)}${at}}`
}

/** The server took this connection out of `room`. */
export function removedFrame (room: string): string {
  return `{"type":"system","event":"removed","room":${JSON.stringify(room)}}`
}

export function chatFrame (room: string, userJson: string, text: string): string {
  return `{"type":"chat","room":${JSON.stringify(room)},"user":${userJson},"text":${JSON.stringify(text)}}`
}

export function ackFrame (id: MessageId, data?: unknown): string {
  if (data === undefined) return `{"type":"ack","id":${JSON.stringify(id)}}`
  return JSON.stringify({ type: 'ack', id, data })
}

export function errorFrame (code: ErrorCode, text: string, id?: MessageId): string {
  return id === undefined
    ? JSON.stringify({ type: 'error', code, text })
    : JSON.stringify({ type: 'error', code, text, id })
}
