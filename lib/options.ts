// Options are checked and normalised once, at register time, into one params object with
// every default filled in, so the per-frame path reads plain fields and never re-checks them.
import type { FastifyRequest } from 'fastify'
import type { ChatMessageIn, OriginCheck, PresenceMode, RoomsAdapter, RoomUser, WsRoomsOptions } from '../types/index.js'
import { describe } from './describe.js'
import { InvalidOptionError } from './errors.js'
import { metricsOption, type MetricsParams } from './metrics-option.js'

export interface RoomsParams {
  path: string
  /** undefined: same-origin; null: no check ('*'). */
  origins: OriginCheck | ReadonlySet<string> | null | undefined
  allowMissingOrigin: boolean
  authenticate: WsRoomsOptions['authenticate']
  authorizeJoin: ((user: RoomUser, room: string, request: FastifyRequest) => boolean | Promise<boolean>) | undefined
  /** Asked for every client `message` frame; undefined when not set (then a message costs nothing more). */
  authorizePublish: ((user: RoomUser, room: string, frame: ChatMessageIn) => boolean | Promise<boolean>) | undefined
  maxPayload: number
  /** Bytes of frames that may wait behind one whose async work runs; more closes with 1008. */
  maxBacklogBytes: number
  /** 0 when rate limiting is off. */
  rateLimitMax: number
  rateLimitWindowMs: number
  idleTimeout: number
  maxRoomsPerConnection: number
  maxRoomNameLength: number
  maxBufferedBytes: number
  adapter: RoomsAdapter | undefined
  maxConnectionsPerIp: number
  maxConnections: number
  maxPendingAuthentications: number
  /** ms an `authenticate` call may take before the upgrade is refused (503); 0: no limit. */
  authenticateTimeout: number
  firstFrameTimeout: number
  closeTimeout: number
  /** ms over which fastify.close() drains the node first; 0: no drain. */
  drainOnClose: number
  /** See WsRoomsOptions.writeDelay. */
  writeDelay: number
  retainRequest: boolean
  /** undefined when history is off. */
  history: { size: number, ttlMs: number, rooms: ((room: string) => boolean) | undefined } | undefined
  presenceEvents: 'auto' | PresenceMode | ((room: string) => PresenceMode)
  presenceEachMax: number
  presenceInterval: number
  membersLimit: number
  /** undefined when metrics are off (metrics-option.ts). */
  metrics: MetricsParams | undefined
}

const KNOWN_OPTIONS = new Set<string>([
  'path', 'allowedOrigins', 'allowMissingOrigin', 'authenticate', 'authorizeJoin', 'authorizePublish', 'maxPayload', 'maxBacklogBytes',
  'rateLimit', 'idleTimeout', 'maxRoomsPerConnection', 'maxRoomNameLength', 'maxBufferedBytes', 'adapter',
  'maxConnectionsPerIp', 'maxConnections', 'maxPendingAuthentications', 'authenticateTimeout', 'firstFrameTimeout',
  'closeTimeout', 'drainOnClose', 'writeDelay', 'retainRequest', 'history', 'presenceEvents', 'presenceEachMax', 'presenceInterval', 'membersLimit',
  'metrics'
])
const PRESENCE_MODES = new Set<unknown>(['auto', 'each', 'batched', 'none'])
// Options Fastify itself passes to every plugin.
const FASTIFY_OPTIONS = new Set<string>(['prefix', 'logLevel', 'logSerializers'])
/** What every adapter has (v1); the v2 methods are optional. */
const ADAPTER_METHODS = [
  'init', 'publishToRoom', 'publishToUser', 'publishToAll', 'subscribeRoom', 'unsubscribeRoom',
  'subscribeUser', 'unsubscribeUser', 'addPresence', 'removePresence', 'members', 'close'
] as const

function integer (options: WsRoomsOptions, name: keyof WsRoomsOptions, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
    throw new InvalidOptionError(name, `expected an integer ${range}, got ${describe(value)}`)
  }
  return value
}

export { describe }

function originList (value: unknown[]): Set<string> {
  for (const origin of value) {
    if (typeof origin !== 'string' || origin.length === 0) {
      throw new InvalidOptionError('allowedOrigins', `every entry must be a non-empty origin string, got ${describe(origin)}`)
    }
    // An origin is scheme://host[:port], nothing after it; a trailing slash or path never matches a browser's Origin.
    let parsed: URL
    try { parsed = new URL(origin) } catch {
      throw new InvalidOptionError('allowedOrigins', `${describe(origin)} is not an origin like "https://example.com"`)
    }
    if (parsed.origin !== origin) {
      throw new InvalidOptionError('allowedOrigins', `${describe(origin)} is not an origin; did you mean "${parsed.origin}"?`)
    }
  }
  return new Set(value as string[])
}

function historyOption (value: unknown): RoomsParams['history'] {
  if (value === undefined || value === false) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError('history', `expected false or { size?, ttlMs?, rooms? }, got ${describe(value)}`)
  }
  const { size = 100, ttlMs = 120_000, rooms, ...rest } = value as Record<string, unknown>
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) throw new InvalidOptionError(`history.${unknown}`, 'unknown option (known: size, ttlMs, rooms)')
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) {
    throw new InvalidOptionError('history.size', `expected an integer >= 1, got ${describe(size)}`)
  }
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs < 1) {
    throw new InvalidOptionError('history.ttlMs', `expected an integer >= 1, got ${describe(ttlMs)}`)
  }
  if (rooms !== undefined && typeof rooms !== 'function') {
    throw new InvalidOptionError('history.rooms', `expected a function (room) => boolean, got ${describe(rooms)}`)
  }
  return { size, ttlMs, rooms: rooms as ((room: string) => boolean) | undefined }
}

function presenceOption (value: unknown): RoomsParams['presenceEvents'] {
  if (value === undefined) return 'auto'
  if (typeof value === 'function' || PRESENCE_MODES.has(value)) return value as RoomsParams['presenceEvents']
  throw new InvalidOptionError('presenceEvents', `expected 'auto', 'each', 'batched', 'none' or a function (room) => mode, got ${describe(value)}`)
}

export function normaliseOptions (input: unknown): RoomsParams {
  if (input === null || typeof input !== 'object') {
    throw new InvalidOptionError('options', `expected an object, got ${describe(input)}`)
  }
  const options = input as WsRoomsOptions
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key) && !FASTIFY_OPTIONS.has(key)) {
      throw new InvalidOptionError(key, 'unknown option')
    }
  }

  const path = options.path ?? '/ws'
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new InvalidOptionError('path', `expected a string starting with "/", got ${describe(path)}`)
  }

  let origins: RoomsParams['origins']
  const allowed = options.allowedOrigins
  if (allowed === undefined) origins = undefined
  else if (allowed === '*') origins = null
  else if (typeof allowed === 'function') origins = allowed
  else if (Array.isArray(allowed)) origins = originList(allowed)
  else throw new InvalidOptionError('allowedOrigins', `expected an array of origins, '*' or a function, got ${describe(allowed)}`)

  const allowMissingOrigin = options.allowMissingOrigin ?? false
  if (typeof allowMissingOrigin !== 'boolean') {
    throw new InvalidOptionError('allowMissingOrigin', `expected a boolean, got ${describe(allowMissingOrigin)}`)
  }
  for (const name of ['authenticate', 'authorizeJoin', 'authorizePublish'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new InvalidOptionError(name, `expected a function, got ${describe(options[name])}`)
    }
  }

  let rateLimitMax = 100
  let rateLimitWindowMs = 10_000
  const rateLimit = options.rateLimit
  if (rateLimit === false) {
    rateLimitMax = 0
  } else if (rateLimit !== undefined) {
    if (rateLimit === null || typeof rateLimit !== 'object') {
      throw new InvalidOptionError('rateLimit', `expected { max, windowMs } or false, got ${describe(rateLimit)}`)
    }
    if (!Number.isSafeInteger(rateLimit.max) || rateLimit.max < 1) {
      throw new InvalidOptionError('rateLimit.max', `expected an integer >= 1, got ${describe(rateLimit.max)}`)
    }
    if (!Number.isSafeInteger(rateLimit.windowMs) || rateLimit.windowMs < 1) {
      throw new InvalidOptionError('rateLimit.windowMs', `expected an integer >= 1, got ${describe(rateLimit.windowMs)}`)
    }
    rateLimitMax = rateLimit.max
    rateLimitWindowMs = rateLimit.windowMs
  }

  const retainRequest = options.retainRequest ?? options.authorizeJoin !== undefined
  if (typeof retainRequest !== 'boolean') {
    throw new InvalidOptionError('retainRequest', `expected a boolean, got ${describe(retainRequest)}`)
  }
  if (!retainRequest && options.authorizeJoin !== undefined) {
    throw new InvalidOptionError('retainRequest', 'authorizeJoin is given the upgrade request, so it cannot be false with authorizeJoin')
  }

  const adapter = options.adapter
  if (adapter !== undefined) {
    if (adapter === null || typeof adapter !== 'object') {
      throw new InvalidOptionError('adapter', `expected a RoomsAdapter, got ${describe(adapter)}`)
    }
    for (const method of ADAPTER_METHODS) {
      if (typeof adapter[method] !== 'function') {
        throw new InvalidOptionError('adapter', `a RoomsAdapter needs a ${method}() method`)
      }
    }
  }

  const maxPayload = integer(options, 'maxPayload', 65_536, 1)
  return {
    path,
    origins,
    allowMissingOrigin,
    authenticate: options.authenticate,
    authorizeJoin: options.authorizeJoin,
    authorizePublish: options.authorizePublish,
    maxPayload,
    maxBacklogBytes: integer(options, 'maxBacklogBytes', 16 * maxPayload, 1),
    rateLimitMax,
    rateLimitWindowMs,
    idleTimeout: integer(options, 'idleTimeout', 60_000, 10),
    maxRoomsPerConnection: integer(options, 'maxRoomsPerConnection', 100, 1),
    maxRoomNameLength: integer(options, 'maxRoomNameLength', 128, 1),
    maxBufferedBytes: integer(options, 'maxBufferedBytes', 1_048_576, 1),
    adapter,
    maxConnectionsPerIp: integer(options, 'maxConnectionsPerIp', 100, 0),
    maxConnections: integer(options, 'maxConnections', 10_000, 0),
    maxPendingAuthentications: integer(options, 'maxPendingAuthentications', 1000, 0),
    authenticateTimeout: integer(options, 'authenticateTimeout', 10_000, 0),
    firstFrameTimeout: integer(options, 'firstFrameTimeout', 30_000, 0),
    closeTimeout: integer(options, 'closeTimeout', 2000, 0),
    // setTimeout's limit: a longer window would fire at once.
    drainOnClose: integer(options, 'drainOnClose', 0, 0, 2_147_483_647),
    // At most 100 ms: beyond that the wait would be felt by every user of a busy server.
    writeDelay: integer(options, 'writeDelay', 2, 0, 100),
    retainRequest,
    history: historyOption(options.history),
    presenceEvents: presenceOption(options.presenceEvents),
    presenceEachMax: integer(options, 'presenceEachMax', 100, 0),
    presenceInterval: integer(options, 'presenceInterval', 250, 1),
    membersLimit: integer(options, 'membersLimit', 1000, 1),
    metrics: metricsOption(options.metrics)
  }
}
