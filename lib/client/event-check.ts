// The client's check of incoming event frames against `messages.events` (connect's `messages`
// option): a frame of a defined type that fails its schema is not given to listeners.
import type { MessageDefinitions } from '../../types/messages.js'
import { RoomsClientError } from './errors.js'
import { defineMessages } from './messages.js'
import { firstSchemaError } from './schema-check.js'

/** Checks a frame; returns the error to emit when it fails its event's schema, else undefined. */
export type EventCheck = (frame: { type: string }) => RoomsClientError | undefined

export function eventChecker (messages: MessageDefinitions | undefined): EventCheck | undefined {
  if (messages === undefined) return undefined
  defineMessages(messages)
  const events: Record<string, unknown> = Object.assign(Object.create(null), messages.events)
  return (frame) => {
    const schema = events[frame.type]
    if (schema === undefined) return undefined
    // `type` is the envelope's, and so is the `offset` a history room adds: the schema describes the rest.
    const { type: _type, ...payload } = frame as Record<string, unknown>
    if (!declares(schema, 'offset')) delete payload.offset
    const error = firstSchemaError(schema, payload, '')
    if (error === undefined) return undefined
    return new RoomsClientError('invalid_event', `An event "${frame.type}" failed its schema: ${error}`)
  }
}

function declares (schema: unknown, key: string): boolean {
  const properties = (schema as { properties?: Record<string, unknown> }).properties
  return properties !== undefined && Object.hasOwn(properties, key)
}
