// Property-based tests of the message envelope, over the wire against a real server (CONTRACT
// §4, §5, §8). Each run opens a connection, sends a batch of generated frames as text, and
// checks every reply against a model of the contract: the ack, the error with its code and id,
// the join event, or the close code. Generated: arbitrary JSON values, near-miss envelopes
// (right type, wrong field types, extra fields, __proto__ / constructor / prototype keys, unicode
// edge cases with lone surrogates, numbers like 1e309 and -0), huge strings around maxPayload,
// deep nesting, and arbitrary bytes sent as text.
//
// CI runs a fixed seed. More iterations locally:
//   FUZZ_RUNS=5000 npx tap test/fuzz-envelope.test.ts            (same seed, more runs)
//   FUZZ_SEED=$RANDOM FUZZ_RUNS=2000 npx tap test/fuzz-envelope.test.ts
// A failure prints the seed and the counterexample path; replay it with FUZZ_SEED (and
// FUZZ_PATH=<path> to jump straight to it).
import t from 'tap'
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import { captureLogs, serve, startServer, until } from './helpers.js'

const SEED = Number(process.env.FUZZ_SEED ?? 5052026)
const RUNS = process.env.FUZZ_RUNS === undefined ? undefined : Number(process.env.FUZZ_RUNS)
const PATH = process.env.FUZZ_PATH

const MAX_PAYLOAD = 65536
const MAX_ROOMS = 3
const MAX_ROOM_NAME = 16

function settings (defaultRuns: number): fc.Parameters<unknown> {
  return {
    seed: SEED,
    numRuns: RUNS ?? defaultRuns,
    ...(PATH === undefined ? {} : { path: PATH }),
    // Shrinking goes over the network; bound it so a failure is reported in CI time.
    interruptAfterTimeLimit: 40_000,
    markInterruptAsFailure: false
  }
}

// ---- the model: what the contract says a frame gets ----

type Expected = { close: number } | { frames: any[] }

interface ConnState {
  joined: Set<string>
  user: unknown
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Room names: 1..N UTF-16 code units, none of them C0/C1 control characters (CONTRACT §2). */
function roomNameOk (room: string): boolean {
  if (room.length < 1 || room.length > MAX_ROOM_NAME) return false
  for (let i = 0; i < room.length; i++) {
    const c = room.charCodeAt(i)
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return false
  }
  return true
}

const idOk = (id: unknown): id is string | number => typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))

/**
 * Keys the parser refuses so nothing reaches an object's prototype: an own `__proto__`, or a
 * `constructor` object carrying `prototype`, anywhere in the value. Iterative: values nest deep.
 */
function poisoned (root: unknown): boolean {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const node = stack.pop()
    if (node === null || typeof node !== 'object') continue
    if (Object.hasOwn(node, '__proto__')) return true
    const ctor = Object.hasOwn(node, 'constructor') ? (node as any).constructor : undefined
    if (ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) return true
    for (const key of Object.keys(node)) stack.push((node as any)[key])
  }
  return false
}

function error (code: string, id?: string | number): any {
  return id === undefined ? { type: 'error', code } : { type: 'error', code, id }
}

function ack (id: string | number | undefined, data?: unknown): any[] {
  if (id === undefined) return []
  return [data === undefined ? { type: 'ack', id } : { type: 'ack', id, data }]
}

/** What the server answers to one text frame of these bytes, updating the connection's state. */
function expectedReply (bytes: Buffer, st: ConnState): Expected {
  if (bytes.length > MAX_PAYLOAD) return { close: 1009 }
  let text: string
  try { text = utf8.decode(bytes) } catch { return { close: 1007 } }
  // A leading byte order mark is tolerated (secure-json-parse strips it).
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  let value: any
  try { value = JSON.parse(text) } catch { return { frames: [error('invalid_message')] } }
  if (poisoned(value)) return { frames: [error('invalid_message')] }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { frames: [error('invalid_message')] }

  const own = (key: string): any => Object.hasOwn(value, key) ? value[key] : undefined
  const type = own('type')
  const rawId = own('id')
  const id = idOk(rawId) ? rawId : undefined
  const idValid = rawId === undefined || idOk(rawId)
  if (typeof type !== 'string') return { frames: [error('invalid_message', id)] }
  const room = own('room')

  switch (type) {
    case 'join': {
      if (typeof room !== 'string' || !idValid) return { frames: [error('invalid_message', id)] }
      if (!roomNameOk(room)) return { frames: [error('invalid_room', id)] }
      if (st.joined.has(room)) return { frames: ack(id) }
      if (st.joined.size >= MAX_ROOMS) return { frames: [error('too_many_rooms', id)] }
      st.joined.add(room)
      return { frames: [{ type: 'system', event: 'join', room, user: st.user, text: 'User joined room' }, ...ack(id)] }
    }
    case 'leave': {
      if (typeof room !== 'string' || !idValid) return { frames: [error('invalid_message', id)] }
      if (!roomNameOk(room)) return { frames: [error('invalid_room', id)] }
      if (!st.joined.delete(room)) return { frames: [error('not_in_room', id)] }
      return { frames: ack(id) }
    }
    case 'message': {
      if (typeof room !== 'string' || typeof own('text') !== 'string' || !idValid) return { frames: [error('invalid_message', id)] }
      if (!roomNameOk(room)) return { frames: [error('invalid_room', id)] }
      if (!st.joined.has(room)) return { frames: [error('not_in_room', id)] }
      return { frames: ack(id) }
    }
    case 'echo':
      if (!idValid) return { frames: [error('invalid_message', id)] }
      return { frames: ack(id, own('value')) }
    case 'boom':
      if (!idValid) return { frames: [error('invalid_message', id)] }
      return { frames: [error('internal_error', id)] }
    default:
      return { frames: [error('invalid_message', id)] }
  }
}

/** Does a received frame answer as `want` does? Error texts are free except their prefix. */
function matches (got: any, want: any): boolean {
  if (want.type !== 'error') return isDeepStrictEqual(got, JSON.parse(JSON.stringify(want)))
  if (got === null || typeof got !== 'object' || got.type !== 'error' || got.code !== want.code) return false
  if (typeof got.text !== 'string' || got.text.length === 0) return false
  if (want.code === 'invalid_message' && !got.text.startsWith('Invalid message format')) return false
  const keys = Object.keys(got).sort()
  if ('id' in want) return isDeepStrictEqual(keys, ['code', 'id', 'text', 'type']) && isDeepStrictEqual(got.id, JSON.parse(JSON.stringify(want.id)))
  return isDeepStrictEqual(keys, ['code', 'text', 'type'])
}

// ---- a client that sends bytes as text frames and keeps every parsed reply ----

class FuzzClient {
  readonly ws: WebSocket
  readonly frames: any[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  welcome: any
  private wake: (() => void) | null = null

  constructor (url: string) {
    this.ws = new WebSocket(url)
    this.ws.on('error', () => {})
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString()
      let parsed: any
      try { parsed = JSON.parse(text) } catch { parsed = { unparsable: text, isBinary } }
      this.frames.push(parsed)
      this.wake?.()
    })
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => {
      this.wake?.()
      resolve({ code, reason: reason.toString() })
    }))
  }

  static async open (url: string): Promise<FuzzClient> {
    const c = new FuzzClient(url)
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', () => resolve())
      c.ws.once('error', reject)
    })
    await c.waitFor(() => c.frames.length >= 1)
    c.welcome = c.frames.shift()
    if (c.welcome?.event !== 'welcome') throw new Error('no welcome frame first: ' + JSON.stringify(c.welcome))
    return c
  }

  /** Wait until `done()` holds or the connection closes; throws after `timeoutMs`. */
  async waitFor (done: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!done() && this.ws.readyState !== WebSocket.CLOSED) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms; received ${JSON.stringify(this.frames).slice(0, 500)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => { clearTimeout(timer); resolve() }
      })
      this.wake = null
    }
  }

  sendText (bytes: Buffer): void {
    this.ws.send(bytes, { binary: false })
  }

  async close (): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close()
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate()
    await this.closed
  }
}

let markerSeq = 0

/** What the generated frames came to, so a run shows which outcomes it reached. */
const outcomes = new Map<string, number>()
function report (t: { comment: (...args: unknown[]) => void }): void {
  t.comment('outcomes: ' + [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', '))
  outcomes.clear()
}
function tally (e: Expected): void {
  const keys = 'close' in e
    ? [`close ${e.close}`]
    : e.frames.length === 0 ? ['no reply'] : e.frames.map((f) => f.type === 'error' ? `error ${f.code}` : f.type === 'ack' ? ('data' in f ? 'ack with data' : 'ack') : `${f.type} ${f.event ?? ''}`.trim())
  for (const k of keys) outcomes.set(k, (outcomes.get(k) ?? 0) + 1)
}

/**
 * Send `frames` on a fresh connection and check every reply. Frames are answered in order
 * (CONTRACT: one connection's frames are handled one at a time), so the replies are compared
 * group by group; a join's event and ack may come in either order. A marker frame at the end
 * proves that nothing else arrived. A frame the model says closes the connection ends the batch.
 */
async function play (url: string, frames: Buffer[]): Promise<void> {
  const client = await FuzzClient.open(url)
  try {
    const st: ConnState = { joined: new Set(), user: client.welcome.user }
    const groups: any[][] = []
    let closeCode: number | undefined
    const sent: Buffer[] = []
    for (const bytes of frames) {
      const e = expectedReply(bytes, st)
      tally(e)
      sent.push(bytes)
      if ('close' in e) {
        closeCode = e.close
        break
      }
      groups.push(e.frames)
    }
    const markerId = `marker-${++markerSeq}-${SEED}`
    if (closeCode === undefined) {
      const marker = Buffer.from(JSON.stringify({ type: 'leave', room: '~marker~', id: markerId }))
      const e = expectedReply(marker, st) as { frames: any[] }
      groups.push(e.frames)
      sent.push(marker)
    }
    for (const bytes of sent) client.sendText(bytes)

    if (closeCode === undefined) {
      await client.waitFor(() => client.frames.some((f) => f?.id === markerId && (f.type === 'error' || f.type === 'ack')))
    } else {
      await client.closed
    }
    const got = client.frames
    const describe = (): string => `sent ${JSON.stringify(sent.map((b) => b.toString().slice(0, 200)))}\n` +
      `expected ${JSON.stringify(groups).slice(0, 2000)}${closeCode === undefined ? '' : ` then close ${closeCode}`}\n` +
      `got ${JSON.stringify(got).slice(0, 2000)}`

    let at = 0
    for (let g = 0; g < groups.length; g++) {
      const want = groups[g]
      const slice = got.slice(at, at + want.length)
      // On a close, replies to async frames before it may be cut off; what did arrive must be right.
      if (closeCode !== undefined && slice.length < want.length) {
        if (!slice.every((f) => want.some((w) => matches(f, w)))) throw new Error(`unexpected reply before the close\n${describe()}`)
        at = got.length
        break
      }
      const unmatched = [...want]
      for (const f of slice) {
        const i = unmatched.findIndex((w) => matches(f, w))
        if (i === -1) throw new Error(`frame ${g}: reply ${JSON.stringify(f).slice(0, 300)} is not what the contract gives\n${describe()}`)
        unmatched.splice(i, 1)
      }
      at += want.length
    }
    if (at !== got.length) throw new Error(`extra frames: ${JSON.stringify(got.slice(at)).slice(0, 500)}\n${describe()}`)
    if (closeCode !== undefined) {
      const closed = await client.closed
      if (closed.code !== closeCode) throw new Error(`closed with ${closed.code}, expected ${closeCode}\n${describe()}`)
    } else if (client.ws.readyState !== WebSocket.OPEN) {
      throw new Error(`the connection closed (${(await client.closed).code}) though no frame called for it\n${describe()}`)
    }
  } finally {
    await client.close()
  }
}

// ---- generators ----

/** Bytes of a frame; a counterexample prints them as text (or hex when they are not UTF-8). */
function frame (bytes: Buffer): Buffer {
  return Object.assign(bytes, {
    [fc.toStringMethod]: () => {
      try { return `text(${JSON.stringify(utf8.decode(bytes)).slice(0, 500)})` } catch { return `hex(${bytes.toString('hex').slice(0, 500)})` }
    }
  })
}
const enc = (s: string): Buffer => frame(Buffer.from(s, 'utf8'))

/** JSON number literals, the odd ones included: -0, 1e309 (Infinity once parsed), 2^53 + 1. */
const numberText = fc.oneof(
  fc.constantFrom('-0', '0', '1e309', '-1e309', '1E400', '1e308', '-1.7976931348623157e308', '5e-324', '1e-400',
    '9007199254740993', '123456789012345678901234567890', '0.1', '-1.5e-7', '1E2', '42'),
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d))
)

const edgeStrings = [
  '', ' ', 'a', 'b', 'ü', '😀', '😀x', '\u00a0', '\u2028', '\u2029', '\ufeff', '\ufffe', '\uffff',
  '\ud800', '\udc00', 'a\ud800b', '\udbff\udfff', 'e\u0301', '\u0000', 'a\u0000', 'a\u001f', '\u007f', 'b\u0085',
  'c\u009f', '\u00a0x', 'r'.repeat(MAX_ROOM_NAME), 'r'.repeat(MAX_ROOM_NAME + 1), '😀'.repeat(MAX_ROOM_NAME / 2),
  '😀'.repeat(MAX_ROOM_NAME / 2) + 'x', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'
]

/** String values as JSON text: escaped by JSON.stringify (lone surrogates become \\udXXX) or raw. */
const stringText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...edgeStrings).map((s) => JSON.stringify(s)) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map((s) => JSON.stringify(s)) },
  // Raw in the text: control characters make it invalid JSON, lone surrogates turn into U+FFFD on the wire.
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }).map((s) => `"${s.replace(/["\\]/g, '')}"`) },
  { weight: 1, arbitrary: fc.constantFrom('"\\u005f_proto__"', '"\\ud83d\\ude00"', '"\\uD800"', '"\\x41"', '"\\u00"', '"a\\/b"') }
)

const keyText = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }).map((k) => JSON.stringify(k)) },
  {
    weight: 3,
    arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'user', 'toString', 'valueOf', 'hasOwnProperty',
      '__defineGetter__', 'type', 'id', 'room', 'text', 'value', '', '\u0000', '\ud800').map((k) => JSON.stringify(k))
  },
  { weight: 1, arbitrary: fc.constant('"\\u005f\\u005fproto\\u005f\\u005f"') }
)

/** Arbitrary JSON values, as text (so duplicate keys, -0 and 1e309 survive as written). */
const { value: jsonText } = fc.letrec<{ value: string, array: string, object: string }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('null', 'true', 'false'), numberText, stringText, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
  object: fc.array(fc.tuple(keyText, tie('value')), { maxLength: 4 })
    .map((entries) => `{${entries.map(([k, v]) => `${k}:${v}`).join(',')}}`)
}))

const roomPool = ['a', 'b', 'c', '😀x', '\ud800', 'ü', '\u00a0', 'r'.repeat(MAX_ROOM_NAME)]
const roomText = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...roomPool).map((r) => JSON.stringify(r)) },
  { weight: 2, arbitrary: stringText },
  { weight: 1, arbitrary: jsonText }
)
const typeText = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('join', 'join', 'join', 'leave', 'message', 'message', 'echo', 'boom').map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: fc.constantFrom('JOIN', 'join ', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'system', 'ack', 'error', '').map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: jsonText }
)
const idText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('"i1"', '""', '"\\ud800"', '0', '-0', '7', '1e309', '-1e309', '1e308', '0.5', '9007199254740993', '"1"') },
  { weight: 1, arbitrary: numberText },
  { weight: 1, arbitrary: stringText },
  { weight: 1, arbitrary: fc.constantFrom('null', 'true', 'false', '[]', '{}', '["x"]', '{"id":1}') }
)

type Field = [string, string]

/** Near-miss envelopes: the right shape most of the time, wrong in one or two places. */
/** `arb` with weight `present` against `absent` for null (the field left out). */
function maybe<T> (arb: fc.Arbitrary<T>, present: number, absent = 1): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: present, arbitrary: arb }, { weight: absent, arbitrary: fc.constant(null) })
}

const envelopeText = fc.record({
  type: maybe(typeText, 15),
  room: maybe(roomText, 10),
  text: maybe(fc.oneof({ weight: 6, arbitrary: stringText }, { weight: 1, arbitrary: jsonText }), 2),
  id: maybe(idText, 1),
  value: maybe(jsonText, 1, 2),
  user: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('{"id":"admin"}', '"admin"', '{"__proto__":{"admin":true}}') }),
  extra: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(keyText, jsonText), { minLength: 1, maxLength: 3 }) }),
  separator: fc.constantFrom(',', ',', ' , ', ',\n\t', ',\r\n'),
  pad: fc.constantFrom('', '', '', ' ', '\n', '\t \r\n', '\ufeff')
}).chain((r) => {
  const fields: Field[] = []
  for (const key of ['type', 'room', 'text', 'id', 'value', 'user'] as const) {
    const v = r[key]
    if (v !== null) fields.push([JSON.stringify(key), v])
  }
  fields.push(...r.extra)
  return fc.shuffledSubarray(fields, { minLength: fields.length, maxLength: fields.length })
    .map((shuffled) => `${r.pad}{${shuffled.map(([k, v]) => `${k}:${v}`).join(r.separator)}}${r.pad === '\ufeff' ? '' : r.pad}`)
})

const frameBytes = fc.oneof(
  { weight: 12, arbitrary: envelopeText.map(enc) },
  { weight: 2, arbitrary: jsonText.map(enc) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }).map(enc) }
)

/** Bytes sent as a text frame: random, random with valid UTF-8 stretches, or an envelope with bytes flipped. */
const arbitraryBytes = fc.oneof(
  fc.uint8Array({ maxLength: 48 }).map((a) => frame(Buffer.from(a))),
  fc.array(fc.oneof(fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)), fc.string({ unit: 'binary', maxLength: 6 }).map(enc)), { maxLength: 6 })
    .map((parts) => frame(Buffer.concat(parts))),
  fc.tuple(envelopeText, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }))
    .map(([text, flips]) => {
      const b = Buffer.from(text)
      for (const [at, byte] of flips) if (b.length > 0) b[at % b.length] = byte
      return frame(b)
    })
)

/** An envelope padded to exactly MAX_PAYLOAD + delta bytes with one-, two- or four-byte characters. */
const hugeFrame = fc.record({
  delta: fc.integer({ min: -3, max: 3 }),
  filler: fc.constantFrom('a', 'é', '😀', '\u2028'),
  shape: fc.constantFrom('message', 'join', 'echo', 'garbage')
}).map(({ delta, filler, shape }) => {
  const target = MAX_PAYLOAD + delta
  const make = (fill: string): string => shape === 'message'
    ? JSON.stringify({ type: 'message', room: 'a', text: fill, id: 'h' })
    : shape === 'join'
      ? JSON.stringify({ type: 'join', room: 'a', id: 'h', pad: fill })
      : shape === 'echo'
        ? JSON.stringify({ type: 'echo', id: 'h', value: fill })
        : `not json ${fill}`
  const base = Buffer.byteLength(make(''))
  let fill = filler.repeat(Math.max(0, Math.floor((target - base) / Buffer.byteLength(filler))))
  fill += 'a'.repeat(Math.max(0, target - base - Buffer.byteLength(fill)))
  return enc(make(fill))
})

/** Deep nesting: arrays or objects, inside an envelope's extra field or as the whole frame. */
const deepFrame = fc.record({
  depth: fc.integer({ min: 1, max: 30_000 }),
  kind: fc.constantFrom('array', 'object', 'mixed'),
  where: fc.constantFrom('extra', 'whole', 'room', 'unclosed')
}).map(({ depth, kind, where }) => {
  const open = kind === 'array' ? '[' : kind === 'object' ? '{"a":' : '[{"b":'
  const close = kind === 'array' ? ']' : kind === 'object' ? '}' : '}]'
  const nested = open.repeat(depth) + '1' + (where === 'unclosed' ? '' : close.repeat(depth))
  if (where === 'whole' || where === 'unclosed') return enc(nested)
  if (where === 'room') return enc(`{"type":"join","id":"d","room":${nested}}`)
  return enc(`{"type":"join","room":"a","id":"d","x":${nested}}`)
})

// ---- the tests ----

t.test('fuzzed envelopes over the wire get exactly the contract reply', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {
    rateLimit: false,
    maxRoomsPerConnection: MAX_ROOMS,
    maxRoomNameLength: MAX_ROOM_NAME
  }, (app) => {
    app.rooms.handle('echo', Type.Object({ value: Type.Optional(Type.Unknown()) }), (_conn, msg) => msg.value)
    app.rooms.handle('boom', Type.Object({}), () => { throw new Error('boom handler') })
  }, { logger: { level: 'warn', stream: logs.stream } })
  const protoBefore = Object.getOwnPropertyDescriptors(Object.prototype)
  const arrayProtoBefore = Object.getOwnPropertyNames(Array.prototype)
  t.comment(`FUZZ_SEED=${SEED}${RUNS === undefined ? '' : ` FUZZ_RUNS=${RUNS}`}`)

  await t.test('batches of near-miss envelopes and JSON values', async (t) => {
    await fc.assert(fc.asyncProperty(fc.array(frameBytes, { minLength: 1, maxLength: 12 }), (frames) => play(s.url, frames)), settings(250))
    report(t)
  })

  await t.test('arbitrary bytes as text frames', async (t) => {
    await fc.assert(fc.asyncProperty(fc.array(arbitraryBytes, { minLength: 1, maxLength: 4 }), (frames) => play(s.url, frames)), settings(150))
    report(t)
  })

  await t.test('frames around maxPayload', async (t) => {
    await fc.assert(fc.asyncProperty(fc.array(hugeFrame, { minLength: 1, maxLength: 3 }), (frames) => play(s.url, frames)), settings(40))
    report(t)
  })

  await t.test('deep nesting', async (t) => {
    await fc.assert(fc.asyncProperty(fc.array(deepFrame, { minLength: 1, maxLength: 3 }), (frames) => play(s.url, frames)), settings(40))
    report(t)
  })

  await until(() => s.app.rooms.stats().connections === 0, 10_000, 'every fuzz connection to be forgotten')
  t.same(s.app.rooms.rooms(), [], 'no room is left once every client is gone')
  t.equal(s.app.rooms.stats().connections, 0, 'no connection is left')
  t.same(Object.getOwnPropertyDescriptors(Object.prototype), protoBefore, 'Object.prototype is untouched')
  t.same(Object.getOwnPropertyNames(Array.prototype), arrayProtoBefore, 'Array.prototype is untouched')
  for (const key of ['admin', 'polluted', 'room', 'type', 'id', 'a', 'b', 'x', 'value']) {
    t.equal(({} as Record<string, unknown>)[key], undefined, `no "${key}" on a fresh object`)
  }
  const unexpected = logs.records().filter((r) => r.level >= 50 && r.msg !== 'a fastify.rooms handler threw')
  t.same(unexpected.map((r) => r.msg), [], 'nothing but the throwing handler was logged as an error')
})

t.test('an application handler whose result cannot be serialized gets internal_error, not a crash', async (t) => {
  // Echoing client input back is ordinary; a value nested deeper than JSON.stringify can go
  // (or a BigInt) must be answered like a throwing handler (CONTRACT §8), not escape the
  // 'message' listener as an uncaught exception.
  const s = await startServer({ rateLimit: false }, (app) => {
    app.rooms.handle('echo', Type.Object({ value: Type.Optional(Type.Unknown()) }), (_conn, msg) => msg.value)
    app.rooms.handle('bigint', Type.Object({}), () => 10n)
    app.rooms.handle('bigint-async', Type.Object({}), async () => 10n)
  })
  const uncaught: Error[] = []
  const onUncaught = (err: Error): void => { uncaught.push(err) }
  // Held for this test only, so a crash shows up as a failed assertion instead of ending the run.
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', onUncaught)
  const restore = (): void => {
    process.removeListener('uncaughtException', onUncaught)
    for (const l of listeners) process.on('uncaughtException', l)
  }

  const ask = async (frame: string, id: string): Promise<any> => {
    const client = await FuzzClient.open(s.url)
    try {
      client.sendText(enc(frame))
      await client.waitFor(() => client.frames.some((f) => f.id === id), 3000).catch(() => {})
      return client.frames.find((f) => f.id === id)
    } finally {
      client.ws.terminate()
    }
  }
  const depth = 20_000
  t.equal((await ask('{"type":"bigint-async","id":"a"}', 'a'))?.code, 'internal_error', 'a BigInt from an async handler: internal_error')
  t.equal((await ask('{"type":"bigint","id":"b"}', 'b'))?.code, 'internal_error', 'a BigInt result: internal_error')
  t.equal((await ask(`{"type":"echo","id":"d","value":${'['.repeat(depth)}${']'.repeat(depth)}}`, 'd'))?.code,
    'internal_error', 'a result too deep to serialize: internal_error')
  restore()
  t.same(uncaught.map((e) => e.message), [], 'no uncaught exception')

  // A stuck socket must not stall shutdown either (CONTRACT §8: no hang).
  let timer: NodeJS.Timeout | undefined
  const closed = await Promise.race([
    s.app.close().then(() => true, () => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), 8000) })
  ])
  clearTimeout(timer)
  t.ok(closed, 'fastify.close() finishes')
})
