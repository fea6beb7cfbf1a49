// CONTRACT §8: fastify.close() — every client gets close 1001 before the server stops, and no hang.
import t from 'tap'
import WebSocket from 'ws'
import { closedWithin, connect, join, startServer, type TestClient } from './helpers.js'

t.test('fastify.close(): every client gets 1001 and close resolves', async (t) => {
  const closeTimeout = 5000
  const s = await startServer({ closeTimeout })
  const clients: TestClient[] = []
  t.teardown(async () => {
    for (const c of clients) c.ws.terminate()
    await s.app.close()
  })
  for (let i = 0; i < 5; i++) clients.push(await connect(s.url))
  await join(clients[0], 'r')
  await join(clients[1], 'r')
  await join(clients[2], 'q')
  const disconnects: number[] = []
  s.app.rooms.on('disconnect', (_conn, code) => { disconnects.push(code) })

  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  // Every client answers the close at once: close() must not sit out closeTimeout.
  t.ok(took < closeTimeout, `close() resolved once every client answered: ${took} ms (closeTimeout ${closeTimeout} ms)`)
  const codes = await Promise.all(clients.map(async (c) => (await closedWithin(c)).code))
  t.same(codes, [1001, 1001, 1001, 1001, 1001], 'every client got 1001')
  t.equal(s.app.server.listening, false, 'the server stopped')
  t.equal(s.app.rooms.stats().connections, 0, 'no connection left')
  t.same(s.app.rooms.rooms(), [], 'no room left')
  t.equal(disconnects.length, 5, 'a disconnect event per connection')
})

t.test('the 1001 arrives before the server stops: clients see it during close()', async (t) => {
  const s = await startServer({})
  const c = await connect(s.url)
  t.teardown(async () => { c.ws.terminate(); await s.app.close() })
  let closedBeforeCloseResolved = false
  c.closed.then(() => { closedBeforeCloseResolved = true }, () => {})
  await s.app.close()
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(closedBeforeCloseResolved, 'the client had its close when close() resolved')
  t.equal((await closedWithin(c)).code, 1001)
})

t.test('a client that never answers the close does not hang close()', async (t) => {
  const s = await startServer({ closeTimeout: 300 })
  const stuck = await connect(s.url)
  const polite = await connect(s.url)
  t.teardown(async () => { stuck.ws.terminate(); polite.ws.terminate(); await s.app.close() })
  await join(stuck, 'r')
  ;(stuck.ws as any)._socket.pause()
  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  // It waits for the stuck client's answer for closeTimeout (so a slow but live client can still
  // finish the closing handshake), then cuts it: not sooner, and not much later. (The lower bound
  // allows for timers measured from the event loop's cached clock, which can lag Date.now().)
  t.ok(took >= 300 - 100 && took < 300 + 2000, `close() resolved after closeTimeout: ${took} ms (closeTimeout 300 ms)`)
  t.equal((await closedWithin(polite)).code, 1001)
  t.equal(s.app.server.listening, false, 'the server stopped')
  ;(stuck.ws as any)._socket.resume()
  const cut = await closedWithin(stuck)
  t.equal(stuck.ws.readyState, WebSocket.CLOSED, 'the stuck client was cut')
  t.equal(cut.code, 1001, 'its 1001 was sent before the cut (read once it read again)')
  t.equal(s.app.rooms.stats().connections, 0)
})

t.test('close() with no clients resolves', async (t) => {
  const s = await startServer({})
  await s.app.close()
  t.equal(s.app.server.listening, false)
})

t.test('after close no new upgrade is accepted', async (t) => {
  const s = await startServer({})
  const c = await connect(s.url)
  t.teardown(async () => { c.ws.terminate(); await s.app.close() })
  await s.app.close()
  const ws = new WebSocket(s.url)
  const outcome = await new Promise<string>((resolve) => {
    ws.on('open', () => { ws.terminate(); resolve('open') })
    ws.on('unexpected-response', () => resolve('refused'))
    ws.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })
  t.equal(outcome, 'ECONNREFUSED', 'the port no longer answers')
})
