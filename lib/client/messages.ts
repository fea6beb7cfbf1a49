// `defineMessages`: one definition of an application's messages, checked once, shared by the
// server (`fastify.rooms.implement`) and the client (`connect(url, { messages })`). This file is
// part of the client, so it imports nothing: no TypeBox, no Node, no Fastify.
import type { MessageDefinitions } from '../../types/messages.js'

/** Types the protocol itself uses on the wire: an application message cannot take these names. */
export const WIRE_TYPES: ReadonlySet<string> = new Set(['join', 'leave', 'message', 'members', 'refresh', 'ack', 'error', 'system', 'chat'])

function refuse (entry: string, why: string): never {
  throw new TypeError(`fastify-ws-rooms: defineMessages: ${entry}: ${why}`)
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The properties of an object schema of either TypeBox line, or undefined when `schema` is not one. */
export function objectProperties (schema: unknown): Record<string, unknown> | undefined {
  if (!isObject(schema) || schema.type !== 'object' || !isObject(schema.properties)) return undefined
  return schema.properties
}

function payloadFields (entry: string, schema: unknown): Record<string, unknown> {
  const properties = objectProperties(schema)
  if (properties === undefined) refuse(entry, 'the payload must be a TypeBox object schema (Type.Object), from @sinclair/typebox 0.34 or typebox 1.x')
  return properties
}

function section (def: Record<string, unknown>, name: 'requests' | 'events'): Record<string, unknown> {
  const value = def[name]
  if (value === undefined) return {}
  if (!isObject(value)) refuse(name, 'must be an object')
  return value
}

function checkName (entry: string, name: string): void {
  if (name.length === 0) refuse(entry, 'the name must be a non-empty string')
  if (WIRE_TYPES.has(name)) refuse(entry, `"${name}" is a type the protocol uses on the wire`)
}

/**
 * Returns `def` as it is. Throws a TypeError naming the entry (`requests.post`, `events.posted`)
 * that takes a name the protocol uses, whose payload is not an object schema, or that declares a
 * field the envelope owns (`type` and `id` of a request, `type` of an event).
 */
export function defineMessages<M extends MessageDefinitions> (def: M): M {
  if (!isObject(def)) throw new TypeError('fastify-ws-rooms: defineMessages: the definition must be an object ({ requests, events })')
  const requests = section(def, 'requests')
  for (const name of Object.keys(requests)) {
    const entry = `requests.${name}`
    checkName(entry, name)
    const request = requests[name]
    if (!isObject(request)) refuse(entry, 'must be an object ({ payload, result? })')
    const fields = payloadFields(`${entry}.payload`, request.payload)
    for (const owned of ['type', 'id']) {
      if (Object.hasOwn(fields, owned)) refuse(`${entry}.payload`, `declares "${owned}", which the request's envelope owns`)
    }
    if (request.result !== undefined && !isObject(request.result)) refuse(`${entry}.result`, 'must be a TypeBox schema')
  }
  const events = section(def, 'events')
  for (const name of Object.keys(events)) {
    const entry = `events.${name}`
    checkName(entry, name)
    const fields = payloadFields(entry, events[name])
    if (Object.hasOwn(fields, 'type')) refuse(entry, 'declares "type", which the event\'s frame owns')
  }
  return def
}
