// The reconnect policy as plain functions (close-code table, handshake statuses, backoff), and the
// client against servers that misbehave below the protocol: silent TCP, no welcome, garbage frames.
import t from 'tap'
import { createServer, type Socket } from 'node:net'
import { WebSocketServer } from 'ws'
import { shouldReconnect } from '../lib/client/index.js'
import { backoffDelay, handshakeVerdict, networkErrorOf, normalizeReconnect, reconnectDefaults, statusOfError } from '../lib/client/policy.js'
import { openClient } from './client-helpers.js'

t.test('the close-code table', async (t) => {
  for (const code of [1001, 1005, 1006, 1009, 1011, 1012, 1013, 1014, 2000]) t.equal(shouldReconnect(code), true, `${code} reconnects`)
  for (const code of [1000, 1002, 1003, 1007, 1008, 1010, 1015, 3000, 3999, 4000, 4999]) t.equal(shouldReconnect(code), false, `${code} is final`)
})

t.test('the handshake-status table', async (t) => {
  t.same(handshakeVerdict(401), { retry: false, code: 'unauthorized' })
  t.same(handshakeVerdict(403), { retry: false, code: 'forbidden' })
  for (const status of [400, 404, 405, 426]) t.same(handshakeVerdict(status), { retry: false, code: 'handshake_refused' }, `${status}`)
  for (const status of [408, 425, 429, 500, 502, 503, 504]) t.same(handshakeVerdict(status), { retry: true }, `${status}`)
  t.equal(statusOfError({ message: 'Unexpected server response: 403' }), 403)
  t.equal(statusOfError({ error: new Error('Unexpected server response: 503') }), 503)
  t.equal(statusOfError({ type: 'error' }), undefined, 'a browser error event says nothing')
  t.equal(statusOfError(undefined), undefined)
  t.equal(networkErrorOf({ error: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }), 'ECONNREFUSED')
  t.equal(networkErrorOf({ error: Object.assign(new Error('x'), { code: 42 }) }), undefined)
  t.equal(networkErrorOf({ type: 'error' }), undefined)
})

t.test('backoff: exponential, capped, jittered downwards', async (t) => {
  const o = { ...reconnectDefaults }
  const none = (): number => 0
  const full = (): number => 1
  t.same([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, o, none)), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000])
  t.same([1, 2, 7].map((n) => backoffDelay(n, o, full)), [250, 500, 15000], 'jitter 0.5 takes off up to half')
  t.equal(backoffDelay(3, { ...o, jitter: 0 }, full), 2000, 'no jitter')
  t.equal(backoffDelay(0, o, none), 500, 'attempt 0 is treated as 1')
  const samples = Array.from({ length: 200 }, () => backoffDelay(5, o))
  t.same(samples.filter((d) => d < 4000 || d > 8000), [], 'always within [delay × (1 − jitter), delay]')
})

t.test('reconnect options are normalised and checked', async (t) => {
  t.same(normalizeReconnect(undefined), reconnectDefaults)
  t.same(reconnectDefaults, { initialDelayMs: 500, maxDelayMs: 30000, factor: 2, jitter: 0.5, maxAttempts: Infinity, maxHandshakeFailures: 10 })
  t.equal(normalizeReconnect(false), false)
  t.same(normalizeReconnect({ maxAttempts: 3 }), { ...reconnectDefaults, maxAttempts: 3 })
  t.throws(() => normalizeReconnect(true as any), /reconnect must be an object or false/)
  t.throws(() => normalizeReconnect({ maxDelayMs: Infinity }), /finite/)
  t.throws(() => normalizeReconnect({ maxAttempts: 0 }), /maxAttempts/)
  t.throws(() => normalizeReconnect({ maxHandshakeFailures: 0 }), /maxHandshakeFailures/)
  t.throws(() => normalizeReconnect({ factor: Number.NaN }), /factor/)
})

t.test('an attempt that never gets a welcome is abandoned after connectTimeoutMs and retried', async (t) => {
  // A TCP server that accepts and never answers the upgrade.
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => { sockets.add(socket); socket.on('error', () => {}) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); silent.close(() => resolve()) }))
  const port = (silent.address() as { port: number }).port
  const { client, events } = openClient(t, `ws://127.0.0.1:${port}/ws`, {
    connectTimeoutMs: 30,
    reconnect: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 1 }
  })
  t.match((await events.next('close'))[0], { code: 1006, reason: 'connect timeout', willReconnect: true })
  t.match((await events.next('close'))[0], { willReconnect: false, error: { code: 'reconnect_failed' } })
  t.equal(client.state, 'closed')

  // A WebSocket server that accepts but never says welcome, and sends frames the client ignores.
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  t.teardown(() => new Promise<void>((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()) }))
  wss.on('connection', (ws) => {
    ws.send('not json')
    ws.send('null')
    ws.send('{"no":"type"}')
    ws.send(Buffer.from([1, 2, 3]))
    ws.send(JSON.stringify({ type: 'ack', id: 1, data: 'unasked' }))
  })
  const { client: mute, events: muteEvents } = openClient(t, `ws://127.0.0.1:${(wss.address() as { port: number }).port}/ws`, {
    connectTimeoutMs: 1000,
    reconnect: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 1 }
  })
  const messages: unknown[] = []
  mute.on('message', (frame) => messages.push(frame))
  const queued = mute.join('r').catch((err) => err)
  t.match((await muteEvents.next('close'))[0], { code: 1006, reason: 'connect timeout', willReconnect: true })
  t.match((await muteEvents.next('close'))[0], { willReconnect: false, error: { code: 'reconnect_failed' } })
  t.equal((await queued).code, 'closed', 'the queued join was never sent to a server that did not welcome')
  t.same(messages, [{ type: 'ack', id: 1, data: 'unasked' }, { type: 'ack', id: 1, data: 'unasked' }], 'only well-formed frames are dispatched')
  t.same(muteEvents.events('open'), [])
})
