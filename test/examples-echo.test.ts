// examples/echo: the tutorial's echo server, driven through a real socket.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { build } from '../examples/echo/server.js'
import { connect } from './helpers.js'

async function start (t: Test): Promise<{ app: FastifyInstance, http: string, ws: string }> {
  const app = await build()
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, http: `http://127.0.0.1:${address.port}`, ws: `ws://127.0.0.1:${address.port}/ws` }
}

t.test('GET / answers like the tutorial\'s http server', async (t) => {
  const { http } = await start(t)
  const res = await fetch(http + '/')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain/)
  t.equal(await res.text(), 'WebSocket server running')
})

t.test('welcome on connect, then echo round-trips', async (t) => {
  const { ws } = await start(t)
  const client = await connect(ws)
  t.teardown(() => client.close())
  t.equal(client.welcome.text, 'Connected to WebSocket server')
  t.type(client.welcome.connectionId, 'string')

  const ack = await client.request({ type: 'echo', text: 'hello, échø 👋' }, 1)
  t.same(ack, { type: 'ack', id: 1, data: { text: 'hello, échø 👋' } })
  t.same(await client.next({ type: 'echo' }), { type: 'echo', text: 'hello, échø 👋' })
  // The echo frame comes before the ack.
  t.same(client.received.map((m) => m.type), ['system', 'echo', 'ack'])

  // Without an id: the echo frame and no ack (the ack of the next request is the only one).
  client.send({ type: 'echo', text: 'again' })
  t.same(await client.next({ type: 'echo' }), { type: 'echo', text: 'again' })
  await client.request({ type: 'echo', text: 'last' }, 2)
  await client.next({ type: 'echo' })
  t.same(client.pending(), [])
  t.same(client.received.map((m) => m.type), ['system', 'echo', 'ack', 'echo', 'echo', 'ack'])
})

t.test('an echo frame of the wrong shape is refused and the socket stays open', async (t) => {
  const { ws } = await start(t)
  const client = await connect(ws)
  t.teardown(() => client.close())

  const missing = await client.request({ type: 'echo' }, 'a')
  t.equal(missing.type, 'error')
  t.equal(missing.code, 'invalid_message')
  t.match(missing.text, /^Invalid message format/)

  const tooLong = await client.request({ type: 'echo', text: 'x'.repeat(4097) }, 'b')
  t.equal(tooLong.code, 'invalid_message')

  const ok = await client.request({ type: 'echo', text: 'still here' }, 'c')
  t.same(ok.data, { text: 'still here' })
})

t.test('echo goes to the sender only', async (t) => {
  const { ws } = await start(t)
  const a = await connect(ws)
  const b = await connect(ws)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  await a.request({ type: 'echo', text: 'mine' }, 1)
  // A round-trip on b after a's echo: had b been sent the echo, it would have arrived first.
  await b.request({ type: 'echo', text: 'b' }, 2)
  t.same(b.received.filter((m) => m.type === 'echo'), [{ type: 'echo', text: 'b' }])
})
