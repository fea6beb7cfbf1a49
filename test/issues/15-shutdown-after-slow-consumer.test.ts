// Issue 15: a receiver closed with 1013 for reading too slowly was taken out of the connections at
// once, so fastify.close() neither waited for nor cut its socket, and the HTTP server then waited
// for ws's own 30 s close timer. Every socket the plugin opened must be closed or cut within
// closeTimeout, on shutdown and after a slow-consumer close.
import t from 'tap'
import { closedWithin, connect, join, startServer, until } from '../helpers.js'

const closeTimeout = 1000
// Generous for a loaded machine, and still far below the 30 s of ws's own close timer (the fault).
const margin = 10_000

async function slowReceiverCut (s: Awaited<ReturnType<typeof startServer>>): Promise<{ stuck: Awaited<ReturnType<typeof connect>> }> {
  const stuck = await connect(s.url)
  await join(stuck, 'r')
  // The receiver stops reading: its kernel buffers fill, then the server's.
  ;(stuck.ws as any)._socket.pause()
  const big = 'x'.repeat(16_000)
  for (let i = 0; i < 400 && s.app.rooms.stats().slowConsumersClosed === 0; i++) {
    await s.app.rooms.broadcast('r', { type: 'bulk', big })
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { stuck }
}

t.test('fastify.close() after a slow consumer was cut takes at most closeTimeout', async (t) => {
  const s = await startServer({ closeTimeout, maxBufferedBytes: 64 * 1024 })
  const polite = await connect(s.url)
  const { stuck } = await slowReceiverCut(s)
  t.teardown(() => { stuck.ws.terminate(); polite.ws.terminate() })
  t.equal(s.app.rooms.stats().slowConsumersClosed, 1, 'the never-reading receiver was closed for being slow')
  t.equal(s.app.rooms.stats().connections, 1, 'it left the connections at once')
  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  // The cut socket gets its closeTimeout (it could still answer), and no more.
  t.ok(took >= closeTimeout - 100 && took <= closeTimeout + margin, `close() took ${took} ms (closeTimeout ${closeTimeout} ms)`)
  t.equal((s.app.server as any)._connections, 0, 'no socket is left open')
  t.equal((await closedWithin(polite)).code, 1001, 'the reading client got 1001')
  ;(stuck.ws as any)._socket.resume()
  await closedWithin(stuck)
})

t.test('a slow consumer\'s socket is cut within closeTimeout even without a shutdown', async (t) => {
  const s = await startServer({ closeTimeout, maxBufferedBytes: 64 * 1024 })
  t.teardown(async () => { await s.app.close() })
  const { stuck } = await slowReceiverCut(s)
  t.teardown(() => stuck.ws.terminate())
  t.equal(s.app.rooms.stats().slowConsumersClosed, 1)
  const cutAt = Date.now()
  // The server side of the TCP connection goes away: seen by the paused client as 'close' once resumed.
  const serverSockets = (): number => (s.app.server as any)._connections as number
  await until(() => serverSockets() === 0, closeTimeout + margin, 'the slow consumer\'s socket to be cut')
  const took = Date.now() - cutAt
  // Not before closeTimeout (it may still answer the close), not much after.
  t.ok(took >= closeTimeout - 100 && took <= closeTimeout + margin, `cut ${took} ms after the 1013 (closeTimeout ${closeTimeout} ms, sweep included)`)
})
