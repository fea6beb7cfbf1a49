// A small signed token: base64url(JSON claims) "." base64url(HMAC-SHA256(secret, claims part)).
// Only characters legal in a WebSocket subprotocol (RFC 6455 → RFC 7230 token), so the same
// token works in `?token=`, `Authorization: Bearer`, and the `bearer.<token>` subprotocol.
// Use a real JWT library when tokens have to be read by other services; this shows the checks
// that matter: a constant-time signature comparison, an expiry, and strict parsing.
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface TokenClaims {
  /** The user id. */
  sub: string
  /** A display name. */
  name?: string
  /** Issued at, seconds since the epoch. */
  iat: number
  /** Expires at, seconds since the epoch. */
  exp: number
}

export interface SignOptions {
  name?: string
  /** The current time in ms (default `Date.now()`), for tests. */
  now?: number
}

/** Tokens longer than this are refused before any work is done on them. */
const MAX_TOKEN_LENGTH = 2048
const MIN_SECRET_BYTES = 32
const BASE64URL = /^[A-Za-z0-9_-]+$/

function keyOf (secret: string | Buffer): Buffer {
  const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret
  if (key.length < MIN_SECRET_BYTES) throw new TypeError(`the token secret must be at least ${MIN_SECRET_BYTES} bytes`)
  return key
}

function mac (key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest()
}

/** A token for `userId` that expires `ttlSeconds` from now. */
export function signToken (userId: string, secret: string | Buffer, ttlSeconds: number, options: SignOptions = {}): string {
  if (typeof userId !== 'string' || userId.length === 0) throw new TypeError('userId must be a non-empty string')
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw new TypeError('ttlSeconds must be a positive number')
  const iat = Math.floor((options.now ?? Date.now()) / 1000)
  const claims: TokenClaims = { sub: userId, ...(options.name !== undefined && { name: options.name }), iat, exp: iat + Math.floor(ttlSeconds) }
  const body = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url')
  return `${body}.${mac(keyOf(secret), body).toString('base64url')}`
}

/** The claims of a well-formed, correctly signed, unexpired token; `null` for anything else. */
export function verifyToken (token: string, secret: string | Buffer, now: number = Date.now()): TokenClaims | null {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return null
  const parts = token.split('.')
  if (parts.length !== 2) return null
  const [body, signature] = parts
  if (!BASE64URL.test(body) || !BASE64URL.test(signature)) return null

  const expected = mac(keyOf(secret), body)
  const given = Buffer.from(signature, 'base64url')
  // timingSafeEqual needs equal lengths; the length of a SHA-256 MAC is public anyway. The
  // re-encoding check refuses other spellings of the same bytes, so a token has one form.
  if (given.length !== expected.length || given.toString('base64url') !== signature) return null
  if (!timingSafeEqual(given, expected)) return null

  // Signed by us, so the JSON is ours; still check every field before trusting it.
  let claims: unknown
  try { claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) } catch { return null }
  if (claims === null || typeof claims !== 'object') return null
  const { sub, name, iat, exp } = claims as Record<string, unknown>
  if (typeof sub !== 'string' || sub.length === 0) return null
  if (name !== undefined && typeof name !== 'string') return null
  if (typeof iat !== 'number' || typeof exp !== 'number') return null
  if (exp * 1000 <= now) return null
  return { sub, ...(name !== undefined && { name }), iat, exp }
}
