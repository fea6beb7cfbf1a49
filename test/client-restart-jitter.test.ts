// The client's spread return after a node stops: on 1001, 1012 and 1013 the first reconnect
// waits a random delay from 0 to restartJitterMs (each client its own) instead of the backoff's
// first delay; later attempts and other close codes keep the backoff.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import { connect } from '../lib/client/index.js'
import { isRestartClose, restartDelay } from '../lib/client/policy.js'
import { balancer, fastReconnect, listen, openClient, type Server } from './client-helpers.js'
import { until } from './helpers.js'

/** A server whose `kick` frame closes the caller with the code it names. */
async function kickable (): Promise<Server> {
  return await listen({}, (app) => {
    app.rooms.handle('kick', Type.Object({ code: Type.Integer() }), (conn, msg) => { conn.close(msg.code, '') })
  })
}

t.test('the restart codes, and the delay drawn from [0, restartJitterMs]', async (t) => {
  t.same([1001, 1012, 1013].map(isRestartClose), [true, true, true])
  t.same([1000, 1005, 1006, 1008, 1011, 1014, 4000, 4001].map(isRestartClose), Array(8).fill(false))
  t.equal(restartDelay(5000, () => 0), 0)
  t.equal(restartDelay(5000, () => 0.5), 2500)
  t.equal(restartDelay(5000, () => 0.9999999), 5000, 'the bound itself can come up')
  t.equal(restartDelay(0, () => 0.7), 0, 'restartJitterMs 0: at once')
  const samples = Array.from({ length: 500 }, () => restartDelay(1000))
  t.same(samples.filter((d) => d < 0 || d > 1000 || !Number.isInteger(d)), [], 'whole ms within [0, 1000]')
})

t.test('restartJitterMs is checked', async (t) => {
  for (const restartJitterMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5000', null]) {
    t.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket, restartJitterMs } as any), { name: 'TypeError', message: /restartJitterMs/ }, String(restartJitterMs))
  }
})

t.test('a drained node\'s clients each wait their own delay within restartJitterMs, then come back through the balancer', async (t) => {
  const A = await listen()
  const B = await listen()
  t.teardown(async () => { await A.app.close(); await B.app.close() })
  const lb = balancer(A.port)
  const clients = Array.from({ length: 8 }, () => openClient(t, A.url, { WebSocket: lb.WebSocket, restartJitterMs: 300 }))
  await Promise.all(clients.map(async ({ client }) => { await client.ready() }))
  t.equal(A.app.rooms.stats().connections, 8)

  // The balancer takes A out of rotation, then A drains.
  lb.sendTo(B.port)
  await A.app.rooms.drain({ overMs: 0 })
  const delays: number[] = []
  for (const { events } of clients) {
    t.match((await events.next('close'))[0], { code: 1012, reason: 'Service restart', willReconnect: true })
    delays.push((await events.next('reconnecting'))[0].delayMs)
  }
  t.same(delays.filter((d) => d < 0 || d > 300), [], `every first delay within [0, 300] ms: ${delays.join(', ')}`)
  t.ok(new Set(delays).size > 1, 'the clients do not all wait the same time')
  for (const { events } of clients) await events.next('open', (info) => info.reconnected === true)
  t.equal(B.app.rooms.stats().connections, 8, 'every client is back, on B')
})

t.test('1001, 1012 and 1013 use restartJitterMs; 1011 keeps the backoff', async (t) => {
  const server = await kickable()
  t.teardown(() => server.app.close())
  // A window so large that a delay from it is all but never within the backoff's first 5 ms.
  const huge = 1_000_000
  for (const code of [1012, 1013]) {
    const opened = [0, 1, 2].map(() => openClient(t, server.url, { restartJitterMs: huge }))
    const delays: number[] = []
    for (const { client, events } of opened) {
      await client.ready()
      client.request('kick', { code }).catch(() => {})
      t.match((await events.next('close'))[0], { code, willReconnect: true })
      delays.push((await events.next('reconnecting'))[0].delayMs)
      await client.close()
    }
    t.same(delays.filter((d) => d < 0 || d > huge), [], `${code}: within [0, restartJitterMs]`)
    t.ok(Math.max(...delays) > fastReconnect.initialDelayMs, `${code}: not the backoff's first delay (${delays.join(', ')})`)
  }
  const { client, events } = openClient(t, server.url, { restartJitterMs: huge })
  await client.ready()
  client.request('kick', { code: 1011 }).catch(() => {})
  t.match((await events.next('close'))[0], { code: 1011, willReconnect: true })
  const delay = (await events.next('reconnecting'))[0].delayMs
  t.ok(delay <= fastReconnect.initialDelayMs, `1011: the backoff's first delay (${delay} ms)`)
  await events.next('open', (info) => info.reconnected === true)
})

t.test('1001 from fastify.close() is a restart code too', async (t) => {
  const server = await listen()
  const opened = [0, 1, 2].map(() => openClient(t, server.url, { restartJitterMs: 1_000_000 }))
  await Promise.all(opened.map(async ({ client }) => { await client.ready() }))
  await server.app.close()
  const delays: number[] = []
  for (const { events } of opened) {
    t.match((await events.next('close'))[0], { code: 1001, willReconnect: true })
    delays.push((await events.next('reconnecting'))[0].delayMs)
  }
  t.ok(Math.max(...delays) > fastReconnect.initialDelayMs && Math.max(...delays) <= 1_000_000, `drawn from restartJitterMs: ${delays.join(', ')}`)
})

t.test('only the first reconnect is jittered: refused by the draining node (503), the next waits the backoff', async (t) => {
  const server = await listen()
  t.teardown(() => server.app.close())
  const { client, events } = openClient(t, server.url, {
    restartJitterMs: 0,
    reconnect: { initialDelayMs: 1000, factor: 1, jitter: 0 }
  })
  await client.ready()
  const drained = server.app.rooms.drain({ overMs: 0 })
  t.match((await events.next('close'))[0], { code: 1012, willReconnect: true })
  t.match((await events.next('reconnecting'))[0], { attempt: 1, delayMs: 0 }, 'restartJitterMs 0: at once, not the backoff\'s 1000 ms')
  const refused = (await events.next('close'))[0]
  t.match(refused, { willReconnect: true, error: { status: 503 } }, 'the draining node refuses the upgrade with 503')
  t.match((await events.next('reconnecting'))[0], { attempt: 2, delayMs: 1000 }, 'then the backoff as usual')
  await client.close()
  await drained
  await until(() => client.state === 'closed')
})
