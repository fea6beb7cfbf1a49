// Client errors that say what happened: a refused upgrade reaches `ready()` and the `close` event
// with its HTTP status and what it means (a retried one too), and a relative URL in Node fails at
// once with a message that asks for an absolute one.
import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../lib/client/index.js'
import { listen, openClient, rejection } from './client-helpers.js'

t.test('a relative URL in Node: a TypeError that asks for an absolute ws:// URL', async (t) => {
  for (const url of ['/ws', 'ws', '']) {
    t.throws(() => connect(url, { WebSocket }), {
      name: 'TypeError',
      message: /^connect\(\) needs an absolute URL here, such as ws:\/\/localhost:3000\/ws: .* outside a web page \(in Node\)/
    }, JSON.stringify(url))
  }
  t.throws(() => connect('localhost:3000/ws', { WebSocket }), {
    name: 'TypeError',
    message: 'connect(): unsupported URL scheme "localhost:" in "localhost:3000/ws": use ws://, wss://, http:// or https://, as in ws://localhost:3000/ws'
  }, 'a URL without its scheme')
})

t.test('an absolute URL of a real server: the same call connects', async (t) => {
  const server = await listen()
  t.teardown(() => server.app.close())
  const { client } = openClient(t, `http://127.0.0.1:${server.port}/ws`)
  await client.ready()
  t.equal(client.url, `ws://127.0.0.1:${server.port}/ws`)
})

t.test('401 (no token): ready() rejects with the refusal, and the close event carries it', async (t) => {
  const server = await listen({ authenticate: () => ({ id: 'u' }) })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url)
  const refused = await rejection(client.ready())
  t.match(refused, { name: 'RoomsClientError', code: 'unauthorized', status: 401 })
  t.equal(refused.message, 'The server refused the upgrade with HTTP 401: the server requires a token and none was sent (see the token option)')
  t.equal((await events.first('close')).error, refused, 'the same error on the close event')
  t.equal(await rejection(client.ready()), refused, 'and on every later ready()')
})

t.test('403 (token refused): ready() rejects with forbidden and the reason', async (t) => {
  const server = await listen({ authenticate: () => null })
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url, { token: 'bad' })
  const refused = await rejection(client.ready())
  t.match(refused, { code: 'forbidden', status: 403, message: 'The server refused the upgrade with HTTP 403: the token, or the Origin of the page, was refused' })
  t.match(await events.first('close'), { code: 1006, willReconnect: false, error: { code: 'forbidden', status: 403 } })
})

t.test('429 (too many connections from this address): retried, each close saying why; final without reconnect', async (t) => {
  const server = await listen({ maxConnectionsPerIp: 1 })
  t.teardown(() => server.app.close())
  const { client: first } = openClient(t, server.url)
  await first.ready()

  const { events } = openClient(t, server.url)
  t.match(await events.first('close'), {
    code: 1006,
    willReconnect: true,
    error: { code: 'rate_limited', status: 429, message: 'The server refused the upgrade with HTTP 429: too many connections from this address' }
  })

  const { client: once } = openClient(t, server.url, { reconnect: false })
  t.match(await rejection(once.ready()), { code: 'rate_limited', status: 429 })
})

t.test('503 (server full): the refusal ends ready() without reconnect, and names itself after the last attempt', async (t) => {
  const server = await listen({ maxConnections: 1 })
  t.teardown(() => server.app.close())
  const { client: first } = openClient(t, server.url)
  await first.ready()

  const { client: once, events } = openClient(t, server.url, { reconnect: false })
  const refused = await rejection(once.ready())
  t.match(refused, { code: 'unavailable', status: 503, message: 'The server refused the upgrade with HTTP 503: the server is full, draining, or cannot authenticate now' })
  t.match(await events.first('close'), { willReconnect: false, error: refused })

  const { client: bounded } = openClient(t, server.url, { reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 2 } })
  const gaveUp = await rejection(bounded.ready())
  t.match(gaveUp, { code: 'reconnect_failed', status: 503, message: /^Gave up after 2 failed attempts \(the last: The server refused the upgrade with HTTP 503: / })
  t.match(gaveUp.cause, { code: 'unavailable', status: 503 })
})
