// The `metrics` option from outside: the series a scrape shows move with the traffic that should
// move them, no label carries a room name or a user id, two instances share a registry, the series
// leave the registry on close, and bad options fail register naming the option.
import { Registry } from 'prom-client'
import { test } from 'tap'
import Fastify from 'fastify'
import wsRooms from '../lib/index.js'
import { connect, refusedUpgrade, serve, until } from './helpers.js'
import { parseExposition, valueOf } from './metrics-scrape.js'

const ORIGIN = 'http://app.example'

async function scrape (registry: Registry): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(await registry.metrics())
}

test('every series moves with the traffic that moves it; labels carry no room name or user id', async (t) => {
  const registry = new Registry()
  const secretRoom = 'secret-room-4711'
  const server = await serve(t, {
    metrics: { registry },
    allowedOrigins: [ORIGIN],
    rateLimit: { max: 10, windowMs: 60_000 },
    maxPayload: 1000,
    history: { rooms: (room) => room.startsWith('h:') },
    authenticate: (token) => ({ id: `user-${token}` })
  }, (app) => {
    app.rooms.handle('ping', { type: 'object', properties: {}, additionalProperties: true } as never, async () => 'pong')
  })
  const url = (token: string): string => `${server.url}?token=${token}`
  const headers = { origin: ORIGIN }

  const a = server.track(await connect(url('alice'), { headers }))
  const b = server.track(await connect(url('bob'), { headers }))
  let s = await scrape(registry)
  t.equal(valueOf(s, 'ws_rooms_connections'), 2, 'two connections')
  t.equal(valueOf(s, 'ws_rooms_rooms'), 0, 'no rooms yet')

  t.equal((await a.request({ type: 'join', room: secretRoom })).type, 'ack')
  t.equal((await b.request({ type: 'join', room: secretRoom })).type, 'ack')
  t.equal((await a.request({ type: 'message', room: secretRoom, text: 'hi' })).type, 'ack')
  await b.next({ type: 'chat', text: 'hi' })
  t.equal((await a.request({ type: 'message', room: 'not-joined', text: 'x' })).code, 'not_in_room')
  t.equal((await a.request({ type: 'ping' })).data, 'pong')
  t.equal((await a.request({ type: 'made-up-by-a-client-123' })).code, 'invalid_message')

  // A refused upgrade (Origin) and a flood past the rate limit.
  t.equal((await refusedUpgrade(url('eve'), { headers: { origin: 'http://evil.example' } })).status, 403)
  const flooder = server.track(await connect(url('mallory'), { headers }))
  for (let i = 0; i < 12; i++) flooder.send({ type: 'members', room: secretRoom, id: i })
  await flooder.next((m) => m.type === 'error' && m.id === 11)

  // History: a rejoin that recovers, and one whose epoch is gone.
  t.equal((await a.request({ type: 'join', room: 'h:1' })).type, 'ack')
  const position = (await b.request({ type: 'join', room: 'h:1' })).data
  t.equal((await a.request({ type: 'message', room: 'h:1', text: 'kept' })).type, 'ack')
  const late = server.track(await connect(url('carol'), { headers }))
  t.equal((await late.request({ type: 'join', room: 'h:1', since: position })).data.recovered, true)
  const stale = server.track(await connect(url('dave'), { headers }))
  t.equal((await stale.request({ type: 'join', room: 'h:1', since: { epoch: 'gone', offset: 0 } })).data.recovered, false)

  // Closes: the client's 1000, the server's 1003 (binary) and 1009 (too large, from ws itself).
  late.ws.close(1000)
  await late.closed
  const binary = server.track(await connect(url('bin'), { headers }))
  binary.ws.send(Buffer.from([1, 2, 3]))
  t.equal((await binary.closed).code, 1003)
  const big = server.track(await connect(url('big'), { headers }))
  big.ws.send('x'.repeat(2000))
  t.equal((await big.closed).code, 1009)
  await until(async () => valueOf(await scrape(registry), 'ws_rooms_closes_total', { code: '1009' }) === 1, 5000, 'the 1009 close counted')

  s = await scrape(registry)
  if (process.env.DEBUG_METRICS) console.error((await registry.metrics()).split('\n').filter((l) => !l.startsWith('#') && !l.includes('bucket')).join('\n'))
  t.equal(valueOf(s, 'ws_rooms_connections'), 4, 'alice, bob, mallory and dave are connected')
  t.equal(valueOf(s, 'ws_rooms_rooms'), 2, 'the secret room and h:1')
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'join' }), 6)
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'message' }), 3)
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'members' }), 12)
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'ping' }), 1, 'a registered type is its own label')
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'unknown' }), 1, 'a type the application did not register is not a label value')
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'other' }), 1, 'the binary frame (ws itself refuses the oversized one: it shows in closes_total)')
  t.ok(valueOf(s, 'ws_rooms_frames_sent_total')! >= 20, 'frames sent are counted')
  t.equal(valueOf(s, 'ws_rooms_refused_total', { code: 'not_in_room' }), 11, 'one message, and the flooder\'s members requests that were not rate limited')
  t.equal(valueOf(s, 'ws_rooms_refused_total', { code: 'invalid_message' }), 1)
  t.equal(valueOf(s, 'ws_rooms_refused_total', { code: 'rate_limited' }), 2)
  t.equal(valueOf(s, 'ws_rooms_upgrades_refused_total', { status: '403' }), 1)
  t.equal(valueOf(s, 'ws_rooms_closes_total', { code: '1000' }), 1)
  t.equal(valueOf(s, 'ws_rooms_closes_total', { code: '1003' }), 1)
  t.equal(valueOf(s, 'ws_rooms_recoveries_total', { recovered: 'true' }), 1)
  t.equal(valueOf(s, 'ws_rooms_recoveries_total', { recovered: 'false' }), 1)
  t.equal(valueOf(s, 'ws_rooms_dropped_total'), 0)
  t.equal(valueOf(s, 'ws_rooms_handler_duration_seconds_count', { type: 'join' }), 6)
  t.equal(valueOf(s, 'ws_rooms_handler_duration_seconds_count', { type: 'ping' }), 1)
  for (const sample of s) {
    for (const value of Object.values(sample.labels)) {
      t.notOk(/secret-room|user-|h:1|made-up/.test(value), `${sample.name} has no room name, user id or client-made type in its labels (${value})`)
    }
  }

  await server.app.close()
  t.equal(registry.getSingleMetric('ws_rooms_connections'), undefined, 'the series leave the registry on close')
})

test('roomLabel adds a room label filled with its value, never the name', async (t) => {
  const registry = new Registry()
  const server = await serve(t, { metrics: { registry, prefix: 'chat_', roomLabel: (room) => room.split(':')[0] } })
  const a = await server.open()
  for (const room of ['team:1', 'team:2', 'dm:alice-bob']) t.equal((await a.request({ type: 'join', room })).type, 'ack')
  const s = await scrape(registry)
  t.equal(valueOf(s, 'chat_rooms', { room: 'team' }), 2)
  t.equal(valueOf(s, 'chat_rooms', { room: 'dm' }), 1)
  t.equal(valueOf(s, 'chat_frames_received_total', { type: 'join', room: 'team' }), 2)
  t.equal(valueOf(s, 'chat_connections'), 1, 'the prefix is used')
  t.notOk((await registry.metrics()).includes('alice-bob'))
})

test('a roomLabel that throws breaks neither the frame nor the scrape', async (t) => {
  const registry = new Registry()
  const server = await serve(t, { metrics: { registry, roomLabel: (room) => { if (room === 'bad') throw new Error('no label'); return 'ok' } } })
  const a = await server.open()
  t.equal((await a.request({ type: 'join', room: 'bad' })).type, 'ack', 'the frame is handled')
  const s = await scrape(registry)
  t.equal(valueOf(s, 'ws_rooms_rooms', { room: '' }), 1, 'counted under an empty label')
  t.equal(valueOf(s, 'ws_rooms_frames_received_total', { type: 'join', room: '' }), 1)
})

test('two instances on one registry share the series: a scrape sums them; each leaves on close', async (t) => {
  const registry = new Registry()
  const one = await serve(t, { metrics: { registry } })
  const two = await serve(t, { metrics: { registry } })
  await one.open()
  await two.open()
  await two.open()
  t.equal(valueOf(await scrape(registry), 'ws_rooms_connections'), 3)
  await two.app.close()
  t.equal(valueOf(await scrape(registry), 'ws_rooms_connections'), 1, 'the closed instance is no longer counted')
  await one.app.close()
  t.equal(registry.getMetricsAsArray().length, 0, 'the last instance took the series out')

  const labelled = await serve(t, { metrics: { registry, roomLabel: () => 'x' } })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsRooms, { metrics: { registry } }).ready() }, /invalid option "metrics.roomLabel"/,
    'the same series with and without roomLabel: refused, naming the option')
  await labelled.app.close()
})

test('metrics: true uses prom-client\'s default registry; a name already taken is refused', async (t) => {
  const { register } = await import('prom-client')
  const server = await serve(t, { metrics: true })
  await server.open()
  t.equal(valueOf(parseExposition(await register.metrics()), 'ws_rooms_connections'), 1)
  await server.app.close()
  t.equal(register.getSingleMetric('ws_rooms_connections'), undefined)

  const registry = new Registry()
  const { Gauge } = await import('prom-client')
  // eslint-disable-next-line no-new
  new Gauge({ name: 'ws_rooms_rooms', help: 'the application\'s own', registers: [registry] })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsRooms, { metrics: { registry } }).ready() }, /invalid option "metrics.prefix": a metric named ws_rooms_rooms is already registered/)
  t.equal(registry.getSingleMetric('ws_rooms_connections'), undefined, 'nothing of ours is left behind')
  t.ok(registry.getSingleMetric('ws_rooms_rooms'), 'the application\'s metric is untouched')
})

test('bad metrics options fail register naming the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['yes', /invalid option "metrics": expected false, true or \{ registry\?, prefix\?, roomLabel\? \}/],
    [{ prefix: '1bad' }, /invalid option "metrics.prefix"/],
    [{ prefix: 'has space' }, /invalid option "metrics.prefix"/],
    [{ roomLabel: 'team' }, /invalid option "metrics.roomLabel": expected a function/],
    [{ registry: {} }, /invalid option "metrics.registry": expected a prom-client Registry/],
    [{ registy: new Registry() }, /invalid option "metrics.registy": unknown option/]
  ]
  for (const [metrics, error] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(wsRooms, { metrics } as never).ready() }, error, JSON.stringify(metrics) ?? String(metrics))
    await app.close()
  }
})

test('metrics on without prom-client installed: register fails naming the option and the package', async (t) => {
  const { execFileSync } = await import('node:child_process')
  const { fileURLToPath } = await import('node:url')
  const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
  const output = execFileSync(process.execPath, ['--import', 'tsx', '--import', fixture('hide-prom-client.mjs'), fixture('metrics-without-prom-client.ts')], { encoding: 'utf8' })
  t.match(output.trim(), /^fastify-ws-rooms: invalid option "metrics": it needs the prom-client package, which is not installed: npm install prom-client$/)
})

test('the Grafana dashboard in docs/ queries only series the plugin exports', async (t) => {
  const { readFileSync } = await import('node:fs')
  const dashboard = JSON.parse(readFileSync(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8'))
  const registry = new Registry()
  const server = await serve(t, { metrics: { registry } })
  await server.open()
  const exported = new Set((await registry.getMetricsAsJSON()).map((m) => m.name))
  const panels: Array<{ title: string, targets: Array<{ expr: string }> }> = dashboard.panels
  t.ok(panels.length >= 10)
  for (const panel of panels) {
    for (const { expr } of panel.targets) {
      for (const [name] of expr.matchAll(/ws_rooms_[a-z_]+/g)) {
        t.ok(exported.has(name.replace(/_bucket$/, '')), `${panel.title}: ${name} is exported`)
      }
    }
  }
})

test('dropped_total counts what could not reach the other nodes', async (t) => {
  const { memoryAdapter } = await import('../lib/index.js')
  const registry = new Registry()
  const adapter = { ...memoryAdapter(), publishToRoom: () => { throw new Error('the bus is down') } }
  const server = await serve(t, { metrics: { registry }, adapter })
  const a = await server.open()
  t.equal((await a.request({ type: 'join', room: 'r' })).type, 'ack')
  t.equal((await a.request({ type: 'message', room: 'r', text: 'lost elsewhere' })).type, 'ack', 'local delivery goes on')
  await server.app.rooms.broadcast('r', { type: 'x' })
  // The join's system event, the message and the broadcast.
  t.equal(valueOf(await scrape(registry), 'ws_rooms_dropped_total'), 3)
  t.equal(server.app.rooms.stats().dropped, 3, 'the same number as stats()')
})
