// CONTRACT §2: options. Bad options fail register/ready/listen with an error naming the option;
// the defaults hold; `path` moves the route.
import t from 'tap'
import Fastify from 'fastify'
import wsRooms from '../lib/index.js'
import { closedWithin, join, refusedUpgrade, roundTrip, serve } from './helpers.js'

const badOptions: Array<[string, Record<string, unknown>]> = [
  ['path', { path: 42 }],
  ['path', { path: '' }],
  ['path', { path: 'ws' }],
  ['allowedOrigins', { allowedOrigins: 'https://example.com' }],
  ['allowedOrigins', { allowedOrigins: 42 }],
  ['allowedOrigins', { allowedOrigins: [42] }],
  ['allowedOrigins', { allowedOrigins: {} }],
  ['allowMissingOrigin', { allowMissingOrigin: 'yes' }],
  ['authenticate', { authenticate: 'token' }],
  ['authenticate', { authenticate: {} }],
  ['authorizeJoin', { authorizeJoin: true }],
  ['maxPayload', { maxPayload: -1 }],
  ['maxPayload', { maxPayload: '64k' }],
  ['maxPayload', { maxPayload: Number.NaN }],
  ['maxPayload', { maxPayload: 1.5 }],
  ['rateLimit', { rateLimit: true }],
  ['rateLimit', { rateLimit: 100 }],
  ['rateLimit', { rateLimit: { max: 10 } }],
  ['rateLimit', { rateLimit: { windowMs: 1000 } }],
  ['rateLimit', { rateLimit: { max: -1, windowMs: 1000 } }],
  ['rateLimit', { rateLimit: { max: 10, windowMs: -5 } }],
  ['rateLimit', { rateLimit: { max: '10', windowMs: 1000 } }],
  ['idleTimeout', { idleTimeout: -1 }],
  ['idleTimeout', { idleTimeout: '60s' }],
  ['idleTimeout', { idleTimeout: Number.NaN }],
  ['maxRoomsPerConnection', { maxRoomsPerConnection: -1 }],
  ['maxRoomsPerConnection', { maxRoomsPerConnection: 'many' }],
  ['maxRoomsPerConnection', { maxRoomsPerConnection: 2.5 }],
  ['maxRoomNameLength', { maxRoomNameLength: 0 }],
  ['maxRoomNameLength', { maxRoomNameLength: -3 }],
  ['maxRoomNameLength', { maxRoomNameLength: '128' }],
  ['maxBufferedBytes', { maxBufferedBytes: -1 }],
  ['maxBufferedBytes', { maxBufferedBytes: 'lots' }],
  ['adapter', { adapter: 'redis' }],
  ['adapter', { adapter: {} }],
  ['adapter', { adapter: { publishToRoom () {} } }],
  // Extra options of this implementation (types/index.d.ts), held to the same rule.
  ['maxConnectionsPerIp', { maxConnectionsPerIp: -1 }],
  ['maxConnections', { maxConnections: 'x' }],
  ['maxPendingAuthentications', { maxPendingAuthentications: -1 }],
  ['firstFrameTimeout', { firstFrameTimeout: -1 }],
  ['closeTimeout', { closeTimeout: 'soon' }],
  ['writeDelay', { writeDelay: -1 }],
  ['writeDelay', { writeDelay: 101 }],
  ['writeDelay', { writeDelay: '2ms' }],
  // This implementation also refuses unknown options (a typo would otherwise be silently ignored).
  ['maxPayloadBytes', { maxPayloadBytes: 1024 }]
]

t.test('a bad option fails ready() with an error naming the option', async (t) => {
  for (const [name, opts] of badOptions) {
    const app = Fastify({ logger: false })
    app.register(wsRooms, opts as any)
    let error: any
    try {
      await app.ready()
    } catch (err) {
      error = err
    }
    t.ok(error instanceof Error, `${JSON.stringify(opts)} is refused`)
    t.match(error?.message ?? '', name, `the error for ${JSON.stringify(opts)} names ${name} (got ${JSON.stringify(error?.message)})`)
    await app.close().catch(() => {})
  }
})

t.test('a bad option makes `await register` reject', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsRooms, { maxPayload: -1 }) }, /maxPayload/)
})

t.test('a bad option makes listen() reject and nothing listens', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  app.register(wsRooms, { rateLimit: { max: 0, windowMs: 0 } } as any)
  await t.rejects(app.listen({ port: 0, host: '127.0.0.1' }), /rateLimit/)
  t.notOk(app.server.listening, 'the server is not listening')
})

t.test('valid options are accepted', async (t) => {
  const opts = [
    {},
    { path: '/rooms' },
    { allowedOrigins: '*' as const },
    { allowedOrigins: [] as string[] },
    { allowedOrigins: ['https://a.example'], allowMissingOrigin: true },
    { allowedOrigins: () => true },
    { allowedOrigins: async () => true },
    { authenticate: () => ({ id: 'x' }) },
    { authorizeJoin: async () => true },
    { rateLimit: false as const },
    { rateLimit: { max: 1, windowMs: 1 } },
    { maxPayload: 1, idleTimeout: 1000, maxRoomsPerConnection: 1, maxRoomNameLength: 1, maxBufferedBytes: 1 }
  ]
  for (const o of opts) {
    const app = Fastify({ logger: false })
    app.register(wsRooms, o)
    await t.resolves(async () => { await app.ready() }, `accepted: ${JSON.stringify(o)}`)
    await app.close()
  }
})

t.test('default path is /ws; other paths are 404', async (t) => {
  const s = await serve(t)
  const c = await s.open()
  t.equal(c.welcome.event, 'welcome')
  const refused = await refusedUpgrade(s.base + '/rooms')
  t.equal(refused.status, 404)
})

t.test('path moves the route', async (t) => {
  const s = await serve(t, { path: '/live/rooms' })
  const c = await s.open()
  t.equal(c.welcome.type, 'system')
  t.equal(c.welcome.event, 'welcome')
  const refused = await refusedUpgrade(s.base + '/ws')
  t.equal(refused.status, 404, '/ws is not served when path is set elsewhere')
})

t.test('default: anonymous users with unique anon- ids', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  const b = await s.open()
  t.match(a.welcome.user.id, /^anon-./)
  t.match(b.welcome.user.id, /^anon-./)
  t.not(a.welcome.user.id, b.welcome.user.id)
})

t.test('default maxPayload is 65536 bytes', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  const b = await s.open()
  await join(a, 'r')
  await join(b, 'r')
  const frameFor = (size: number) => {
    const base = JSON.stringify({ type: 'message', room: 'r', text: '' })
    return JSON.stringify({ type: 'message', room: 'r', text: 'x'.repeat(size - base.length) })
  }
  const exact = frameFor(65536)
  t.equal(Buffer.byteLength(exact), 65536)
  a.send(exact)
  const chat = await b.next({ type: 'chat' })
  t.equal(chat.text.length, 65536 - JSON.stringify({ type: 'message', room: 'r', text: '' }).length, 'a 65536-byte frame is accepted')
  a.send(frameFor(65537))
  t.equal((await closedWithin(a)).code, 1009, 'a 65537-byte frame closes with 1009')
})

t.test('default rateLimit is 100 frames per window', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  for (let i = 0; i < 100; i++) a.send({ type: 'leave', room: 'nowhere', id: i })
  for (let i = 0; i < 100; i++) {
    const m = await a.next((m) => m.id === i)
    if (m.code !== 'not_in_room') t.fail(`frame ${i} was answered ${JSON.stringify(m)}`)
  }
  const over = await a.request({ type: 'leave', room: 'nowhere' }, 'over')
  t.equal(over.type, 'error')
  t.equal(over.code, 'rate_limited', 'the 101st frame is rate limited')
})

t.test('default maxRoomsPerConnection is 100', async (t) => {
  const s = await serve(t, { rateLimit: false })
  const a = await s.open()
  for (let i = 0; i < 100; i++) a.send({ type: 'join', room: `room-${i}`, id: i })
  for (let i = 0; i < 100; i++) {
    const m = await a.next((m) => m.id === i)
    if (m.type !== 'ack') t.fail(`join ${i} was answered ${JSON.stringify(m)}`)
  }
  const over = await a.request({ type: 'join', room: 'room-100' }, 'over')
  t.equal(over.code, 'too_many_rooms')
  t.equal(s.app.rooms.rooms().length, 100)
})

t.test('default maxRoomNameLength is 128', async (t) => {
  const s = await serve(t)
  const a = await s.open()
  t.equal((await a.request({ type: 'join', room: 'r'.repeat(128) })).type, 'ack')
  const refused = await a.request({ type: 'join', room: 'r'.repeat(129) }, 'long')
  t.equal(refused.code, 'invalid_room')
})

t.test('default origin check is same-origin, missing Origin allowed', async (t) => {
  const s = await serve(t)
  await s.open()
  await s.open({ origin: `http://127.0.0.1:${s.port}` })
  t.equal((await refusedUpgrade(s.url, { origin: 'http://evil.example' })).status, 403)
})

t.test('rateLimit: false lifts the limit', async (t) => {
  const s = await serve(t, { rateLimit: false })
  const a = await s.open()
  for (let i = 0; i < 250; i++) a.send({ type: 'leave', room: 'nowhere', id: i })
  for (let i = 0; i < 250; i++) {
    const m = await a.next((m) => m.id === i)
    if (m.code !== 'not_in_room') t.fail(`frame ${i} was answered ${JSON.stringify(m)}`)
  }
  await roundTrip(a)
  t.equal(a.ws.readyState, a.ws.OPEN)
})
