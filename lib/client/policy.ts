// When to reconnect and how long to wait: the close-code table, the handshake-refusal table and
// the jittered exponential backoff, kept as plain functions so they can be read (and tested) alone.
import type { ClientErrorCode, ReconnectOptions } from '../../types/client.js'

export type NormalizedReconnect = Required<ReconnectOptions>

/** The server's close code when the session's `expiresAt` passed (docs/server-api.md, "Session expiry"). */
const SESSION_EXPIRED = 4001

export const reconnectDefaults: NormalizedReconnect = {
  initialDelayMs: 500,
  maxDelayMs: 30000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
  maxHandshakeFailures: 10
}

/**
 * Whether a close code seen on an opened connection means "come back". No for codes that say
 * the server closed this client on purpose or that this client broke the protocol (reconnecting
 * would repeat it); yes for going away, drops, server trouble and overload.
 */
export function shouldReconnect (code: number): boolean {
  switch (code) {
    case 1000: // normal closure: the server (or application) closed this client on purpose
    case 1002: // protocol error
    case 1003: // unsupported data (a binary frame)
    case 1007: // invalid UTF-8
    case 1008: // policy violation (rate-limit abuse)
    case 1010: // mandatory extension missing
    case 1015: // TLS handshake failure
      return false
  }
  // 4001: the session expired (docs/server-api.md, "Session expiry"); a fresh token gets back in.
  if (code === SESSION_EXPIRED) return true
  // Other codes of 3000–4999 are for libraries and applications (4000: disconnectUser): their
  // meaning is the application's, so the client does not guess that coming back is welcome.
  if (code >= 3000 && code <= 4999) return false
  // 1001 going away, 1005 no status, 1006 dropped (idle termination too), 1009 too big (that
  // frame's call was rejected and is never resent), 1011, 1012, 1013 try again later, 1014, ...
  return true
}

/** Whether a close code means "come back now", without the backoff: only an expired session. */
export function reconnectsAtOnce (code: number): boolean {
  return code === SESSION_EXPIRED
}

export interface HandshakeVerdict {
  retry: boolean
  /** Set when not retrying. */
  code?: ClientErrorCode
}

/** What an HTTP status refusing the upgrade means (only visible with `ws` and the like, not in browsers). */
export function handshakeVerdict (status: number): HandshakeVerdict {
  if (status === 401) return { retry: false, code: 'unauthorized' }
  if (status === 403) return { retry: false, code: 'forbidden' }
  // Timeouts, rate or connection limits, server and gateway errors: passing conditions.
  if (status === 408 || status === 425 || status === 429 || status >= 500) return { retry: true }
  return { retry: false, code: 'handshake_refused' }
}

/** The HTTP status in a `ws` handshake error ("Unexpected server response: 403"), if any. */
export function statusOfError (event: unknown): number | undefined {
  const texts = [messageOf(event), messageOf((event as { error?: unknown } | undefined)?.error)]
  for (const text of texts) {
    const match = /Unexpected server response: (\d{3})/.exec(text)
    if (match !== null) return Number(match[1])
  }
  return undefined
}

/** A Node network error code (ECONNREFUSED, ECONNRESET, ENOTFOUND, ...) carried by an error event, if any. */
export function networkErrorOf (event: unknown): string | undefined {
  const error = (event as { error?: { code?: unknown } } | undefined)?.error
  const code = error?.code
  return typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code) ? code : undefined
}

function messageOf (value: unknown): string {
  if (value === null || typeof value !== 'object') return ''
  const message = (value as { message?: unknown }).message
  return typeof message === 'string' ? message : ''
}

/**
 * Close codes of a server that stops or sheds load on purpose (1001 going away, 1012 service
 * restart, 1013 try again later): every client of that node is told at about the same time.
 */
export function isRestartClose (code: number): boolean {
  return code === 1001 || code === 1012 || code === 1013
}

export const DEFAULT_RESTART_JITTER_MS = 5000

export function normalizeRestartJitter (value: unknown): number {
  if (value === undefined) return DEFAULT_RESTART_JITTER_MS
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError('restartJitterMs must be a finite number >= 0')
  return value
}

/**
 * The wait before reconnecting after a connection closed with a restart code: uniform over
 * [0, restartJitterMs] in place of the backoff's delay, so the clients of a stopping node
 * arrive at the others spread over that time rather than in the same second.
 */
export function restartDelay (restartJitterMs: number, random: () => number = Math.random): number {
  return Math.min(restartJitterMs, Math.floor(random() * (restartJitterMs + 1)))
}

/** The wait before retry number `attempt` (1-based): exponential, capped, then jittered down. */
export function backoffDelay (attempt: number, options: NormalizedReconnect, random: () => number = Math.random): number {
  const exponential = options.initialDelayMs * options.factor ** Math.max(0, attempt - 1)
  const capped = Math.min(options.maxDelayMs, exponential)
  return Math.round(capped * (1 - options.jitter * random()))
}

export function normalizeReconnect (value: ReconnectOptions | false | undefined): NormalizedReconnect | false {
  if (value === false) return false
  if (value === undefined) return { ...reconnectDefaults }
  if (value === null || typeof value !== 'object') throw new TypeError('reconnect must be an object or false')
  const out = { ...reconnectDefaults }
  for (const key of Object.keys(reconnectDefaults) as Array<keyof NormalizedReconnect>) {
    const v = value[key]
    if (v === undefined) continue
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new TypeError(`reconnect.${key} must be a number >= 0`)
    out[key] = v
  }
  if (!Number.isFinite(out.initialDelayMs) || !Number.isFinite(out.maxDelayMs)) throw new TypeError('reconnect delays must be finite')
  if (out.factor < 1) throw new TypeError('reconnect.factor must be >= 1')
  if (out.jitter > 1) throw new TypeError('reconnect.jitter must be between 0 and 1')
  if (out.maxAttempts < 1) throw new TypeError('reconnect.maxAttempts must be >= 1')
  if (out.maxHandshakeFailures < 1) throw new TypeError('reconnect.maxHandshakeFailures must be >= 1')
  return out
}
