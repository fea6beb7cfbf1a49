// Who is chatting: a display name the person picks, carried in the connection's token.
//
// The page keeps two things in localStorage: the name, and a random key made once per browser.
// It connects with the token `<key>.<name as base64url>` (every character an HTTP token character,
// so the token can travel as the `bearer.` subprotocol and stay out of URLs and logs), and the
// server's `authenticate` turns it into the user `{ id, name }`.
//
// The id is a hash of the key, so the ids other members see (in frames, the member list) do not
// let anyone connect as that user: only the browser holding the key can. The name is not a login:
// anyone may call themselves anything. A real application authenticates here (see
// examples/secure for a signed, expiring token).
import { createHash } from 'node:crypto'

/** 32 lowercase hex digits (128 random bits) made by the page. */
const KEY = /^[0-9a-f]{32}$/
/** A name of at most MAX_NAME_LENGTH code points is at most 128 UTF-8 bytes: 171 base64url characters. */
const ENCODED_NAME = /^[A-Za-z0-9_-]{1,171}$/
export const MAX_NAME_LENGTH = 32
// Control characters, line separators and the bidirectional overrides that would let a name turn
// the text around it backwards when shown. (The page applies the same rule before connecting.)
const UNSHOWABLE = /[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u

export interface ChatUser {
  [key: string]: unknown
  /** `u-` and 16 hex digits, derived from the browser's key. */
  id: string
  name: string
}

/** Why `name` cannot be a display name, or undefined when it can. */
export function nameProblem (name: string): string | undefined {
  if (name.length === 0) return 'empty'
  if (name !== name.trim()) return 'leading or trailing space'
  if ([...name].length > MAX_NAME_LENGTH) return `longer than ${MAX_NAME_LENGTH} characters`
  if (UNSHOWABLE.test(name)) return 'contains control or direction characters'
  return undefined
}

/** The user a token stands for, or null when it is not a well-formed `<key>.<name>` token. */
export function userFromToken (token: string): ChatUser | null {
  const dot = token.indexOf('.')
  const key = token.slice(0, dot)
  const encoded = token.slice(dot + 1)
  if (dot < 0 || !KEY.test(key) || !ENCODED_NAME.test(encoded)) return null
  const bytes = Buffer.from(encoded, 'base64url')
  const name = bytes.toString('utf8')
  // Not UTF-8 (decoded with U+FFFD in place of bad bytes), or not the canonical encoding of it.
  if (Buffer.from(name, 'utf8').toString('base64url') !== encoded) return null
  if (nameProblem(name) !== undefined) return null
  return { id: userId(key), name }
}

export function userId (key: string): string {
  return 'u-' + createHash('sha256').update(key).digest('hex').slice(0, 16)
}

/** The token the page sends for `name` and `key` (for Node clients and tests). */
export function tokenFor (name: string, key: string): string {
  return `${key}.${Buffer.from(name, 'utf8').toString('base64url')}`
}
