// Overload: @fastify/under-pressure, registered by the application, covers the WebSocket upgrade
// route like any other: under pressure an upgrade gets 503 with Retry-After before anything of
// the plugin runs (no authenticate call, no connection), and once the pressure is gone upgrades
// pass again. Either order of registration works.
import t from 'tap'
import underPressure from '@fastify/under-pressure'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import wsRooms from '../lib/index.js'
import WebSocket from 'ws'
import { eventually, refusedUpgrade, serve } from './helpers.js'

/** One upgrade: 101 (closed again at once), or the refusal's status and Retry-After. */
async function tryUpgrade (url: string): Promise<{ status: number, retryAfter?: string }> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('open', () => { ws.terminate(); resolve({ status: 101 }) })
    ws.on('unexpected-response', (request, response) => {
      resolve({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'] })
      request.destroy()
    })
    ws.on('error', reject)
  })
}

for (const order of ['before', 'after'] as const) {
  t.test(`a failing healthCheck refuses upgrades with 503 + Retry-After, then lets them in (under-pressure registered ${order} the plugin)`, async (t) => {
    let healthy = true
    let authenticated = 0
    const app = Fastify({ logger: false })
    const pressure = async (): Promise<void> => {
      await app.register(underPressure, { healthCheck: async () => healthy, healthCheckInterval: 20, retryAfter: 7 })
    }
    if (order === 'before') await pressure()
    await app.register(wsRooms, { authenticate: (token) => { authenticated++; return { id: token } } })
    if (order === 'after') await pressure()
    await app.listen({ port: 0, host: '127.0.0.1' })
    let closed = false
    t.teardown(async () => { if (!closed) await app.close() })
    const url = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws?token=u`

    t.equal((await tryUpgrade(url)).status, 101, 'healthy: the upgrade passes')
    healthy = false
    const refused = await eventually(async () => {
      const outcome = await tryUpgrade(url)
      return outcome.status === 503 ? outcome : undefined
    }, 'an upgrade refused under pressure')
    t.equal(refused.retryAfter, '7', 'with Retry-After (under-pressure\'s retryAfter)')
    const calls = authenticated
    // This client reads the refusal and keeps its socket open.
    t.equal((await refusedUpgrade(url)).status, 503)
    t.equal(authenticated, calls, 'refused before authenticate runs')
    t.equal(app.rooms.stats().connections, 0, 'no connection made under pressure')
    healthy = true
    await eventually(async () => (await tryUpgrade(url)).status === 101 ? true : undefined, 'an upgrade to pass again')
    t.pass('pressure gone: upgrades pass again')
    await app.close()
    closed = true
    t.pass('close() did not wait for the refused client that kept its socket open')
  })
}

t.test('event-loop delay over maxEventLoopDelay refuses upgrades with 503 until it is back under', async (t) => {
  const s = await serve(t, {}, async (app) => {
    await app.register(underPressure, { maxEventLoopDelay: 50, sampleInterval: 100 })
  })
  // A process that keeps blocking its event loop for 80 ms at a time, as an overloaded one does.
  const busy = setInterval(() => {
    const until = Date.now() + 80
    while (Date.now() < until) { /* busy */ }
  }, 1)
  t.teardown(() => clearInterval(busy))
  const refused = await eventually(async () => {
    const outcome = await tryUpgrade(s.url)
    return outcome.status === 503 ? outcome : undefined
  }, 'an upgrade refused for event-loop delay', 20_000, 100)
  t.equal(refused.retryAfter, '10', 'with Retry-After (under-pressure\'s default)')
  clearInterval(busy)
  await eventually(async () => (await tryUpgrade(s.url)).status === 101 ? true : undefined, 'an upgrade to pass again', 20_000, 100)
  t.pass('the loop is free again: upgrades pass')
})
