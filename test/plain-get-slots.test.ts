// Plain HTTP GETs of the WebSocket path (no Upgrade: a health check, a crawler, a proxy's probe)
// and the connection limits. They used to take a slot of maxConnections / maxConnectionsPerIp
// each, held until the TCP socket closed: on one keep-alive socket they piled up (a listener per
// request, hence MaxListenersExceededWarning), filled the server (503) and locked the address
// out (429), which behind a proxy that reuses its upstream connections is everyone.
import { Agent, get } from 'node:http'
import t from 'tap'
import { refusedUpgrade, roundTrip, serve } from './helpers.js'

/** One socket kept alive (as a proxy keeps its upstream connections) until the test ends. */
function keepAliveAgent (t: { teardown: (fn: () => void) => void }): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  return agent
}

/** `count` GETs of `url`, one after the other over `agent`: their statuses, and how many reused its socket. */
async function plainGets (agent: Agent, url: string, count: number): Promise<{ statuses: number[], reused: number }> {
  const statuses: number[] = []
  let reused = 0
  for (let i = 0; i < count; i++) {
    statuses.push(await new Promise<number>((resolve, reject) => {
      const request = get(url, { agent }, (response) => {
        response.resume()
        response.on('end', () => resolve(response.statusCode ?? 0))
      })
      request.on('error', reject)
      request.on('socket', () => { if (request.reusedSocket) reused++ })
    }))
  }
  return { statuses, reused }
}

/** Warnings the process emits while `run` runs. */
async function warningsDuring (run: () => Promise<void>): Promise<string[]> {
  const warnings: string[] = []
  const onWarning = (warning: Error): void => { warnings.push(`${warning.name}: ${warning.message}`) }
  process.on('warning', onWarning)
  try {
    await run()
    // A warning is emitted on the next tick after the listener that caused it.
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('warning', onWarning)
  }
  return warnings
}

t.test('plain GETs on one keep-alive socket take no slot once answered: upgrades still fit under maxConnections', async (t) => {
  const s = await serve(t, { maxConnections: 5, maxConnectionsPerIp: 0 })
  const http = s.url.replace(/^ws:/, 'http:')
  // The socket stays open while the upgrades come: their slots must not be held by it.
  const gets = await plainGets(keepAliveAgent(t), http, 20)
  t.equal(gets.reused, 19, 'the 20 GETs went over one socket')
  t.same(gets.statuses, Array(20).fill(404), 'each plain GET gets 404, not 503')
  for (let i = 0; i < 5; i++) await roundTrip(await s.open())
  t.equal(s.app.rooms.stats().connections, 5, '5 upgrades fill maxConnections: 5')
  t.equal((await refusedUpgrade(s.url)).status, 503, 'and the limit still holds for the 6th')
})

t.test('150 plain GETs on one keep-alive socket: no 429, no MaxListenersExceededWarning, the address can still upgrade', async (t) => {
  const s = await serve(t, { maxConnectionsPerIp: 100 })
  const http = s.url.replace(/^ws:/, 'http:')
  let gets: { statuses: number[], reused: number } = { statuses: [], reused: 0 }
  const warnings = await warningsDuring(async () => { gets = await plainGets(keepAliveAgent(t), http, 150) })
  t.equal(gets.reused, 149, 'the 150 GETs went over one socket')
  t.same(gets.statuses, Array(150).fill(404), 'each plain GET gets 404, none 429')
  t.same(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), [], 'no MaxListenersExceededWarning')
  await roundTrip(await s.open())
  t.equal(s.app.rooms.stats().connections, 1, 'an upgrade from the same address is accepted')
})
