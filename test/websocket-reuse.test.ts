// A user who registered @fastify/websocket before the plugin keeps their server and routes;
// the plugin reuses it and still enforces its own limits and subprotocol choice on its route.
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import wsRooms from '../lib/index.js'
import { connect, refusedUpgrade } from './helpers.js'

t.test('reuses an existing @fastify/websocket and keeps the user routes working', async (t) => {
  const app = Fastify()
  await app.register(websocket, { options: { maxPayload: 10 * 1024 * 1024 } })
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data) => socket.send(`echo:${data.toString()}`))
  })
  await app.register(wsRooms, { maxPayload: 1024, authenticate: (token) => ({ id: token }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }

  // The user's own route still gets ws's default subprotocol choice (first offered).
  const echo = new WebSocket(`ws://127.0.0.1:${port}/echo`, ['chat.v2', 'other'])
  const echoed = await new Promise<string>((resolve, reject) => {
    echo.on('open', () => echo.send('hi'))
    echo.on('message', (data) => resolve(data.toString()))
    echo.on('error', reject)
  })
  t.equal(echoed, 'echo:hi')
  t.equal(echo.protocol, 'chat.v2')
  echo.close()

  // Our route answers rooms.v1, never the bearer token, and enforces our maxPayload (1009).
  const client = await connect(`ws://127.0.0.1:${port}/ws`, { protocols: ['bearer.alice', 'rooms.v1'] })
  t.equal(client.ws.protocol, 'rooms.v1')
  t.same(client.welcome.user, { id: 'alice' })
  client.send({ type: 'message', room: 'r', text: 'x'.repeat(2000) })
  t.equal((await client.closed).code, 1009)
})

t.test('an offer without rooms.v1 is refused with 400 before the upgrade, the token never echoed', async (t) => {
  const app = Fastify()
  await app.register(wsRooms, { authenticate: (token) => ({ id: token }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const refused = await refusedUpgrade(`ws://127.0.0.1:${port}/ws`, { protocols: ['bearer.bob'] })
  t.equal(refused.status, 400)
  t.match(refused.body, { statusCode: 400, error: 'Bad Request', message: /rooms\.v1/ })
  t.notMatch(JSON.stringify(refused.body), /bob/)
  const client = await connect(`ws://127.0.0.1:${port}/ws`, { protocols: ['rooms.v1', 'bearer.bob'] })
  t.same(client.welcome.user, { id: 'bob' })
  await client.close()
})
