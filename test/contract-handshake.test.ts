// CONTRACT §3: the handshake. Origin (403), token (401), authenticate (403), other paths (404),
// where the token is read from, the rooms.v1 subprotocol, JSON refusal bodies, and no token in logs.
import t, { type Test } from 'tap'
import { captureLogs, refusedUpgrade, serve } from './helpers.js'

const SECRET = 'sEcReT-t0ken-5f3a9c'

function checkBody (t: Test, body: any, status: number, error: string): void {
  t.type(body, 'object', 'the refusal body is JSON')
  t.equal(body?.statusCode, status, 'body.statusCode')
  t.equal(body?.error, error, 'body.error')
  t.type(body?.message, 'string', 'body.message is a string')
}

t.test('same-origin default', async (t) => {
  const s = await serve(t)
  t.test('no Origin (non-browser client) is allowed', async (t) => {
    const c = await s.open()
    t.equal(c.welcome.event, 'welcome')
  })
  t.test('Origin equal to Host is allowed', async (t) => {
    const c = await s.open({ origin: `http://127.0.0.1:${s.port}` })
    t.equal(c.welcome.event, 'welcome')
  })
  t.test('Origin with another host is refused 403', async (t) => {
    const r = await refusedUpgrade(s.url, { origin: 'http://evil.example' })
    t.equal(r.status, 403)
    checkBody(t, r.body, 403, 'Forbidden')
  })
  t.test('Origin with the same host on another port is refused 403', async (t) => {
    const r = await refusedUpgrade(s.url, { origin: `http://127.0.0.1:${s.port + 1}` })
    t.equal(r.status, 403)
  })
  t.test('Origin with the right port but another host is refused 403', async (t) => {
    const r = await refusedUpgrade(s.url, { origin: `http://localhost.evil:${s.port}` })
    t.equal(r.status, 403)
  })
  t.test('refusals allocate no connection and are counted', async (t) => {
    const before = s.app.rooms.stats()
    await refusedUpgrade(s.url, { origin: 'http://evil.example' })
    const after = s.app.rooms.stats()
    t.equal(after.rejectedUpgrades - before.rejectedUpgrades, 1, 'rejectedUpgrades + 1')
    t.equal(after.connections, before.connections, 'no connection added')
  })
})

t.test('allowedOrigins list: exact matches only, missing Origin refused', async (t) => {
  const s = await serve(t, { allowedOrigins: ['https://app.example', 'http://localhost:3000'] })
  const ok = await s.open({ origin: 'https://app.example' })
  t.equal(ok.welcome.event, 'welcome')
  await s.open({ origin: 'http://localhost:3000' })
  for (const origin of ['https://app.example.evil', 'http://app.example', 'https://evil.app.example', 'http://localhost:3001', `http://127.0.0.1:${s.port}`]) {
    const r = await refusedUpgrade(s.url, { origin })
    t.equal(r.status, 403, `${origin} refused`)
    checkBody(t, r.body, 403, 'Forbidden')
  }
  const missing = await refusedUpgrade(s.url)
  t.equal(missing.status, 403, 'missing Origin refused with a list')
})

t.test('allowedOrigins list with allowMissingOrigin: true', async (t) => {
  const s = await serve(t, { allowedOrigins: ['https://app.example'], allowMissingOrigin: true })
  const c = await s.open()
  t.equal(c.welcome.event, 'welcome', 'missing Origin allowed')
  t.equal((await refusedUpgrade(s.url, { origin: 'https://other.example' })).status, 403, 'wrong Origin still refused')
})

t.test('allowedOrigins function (sync)', async (t) => {
  const seen: Array<[string | undefined, string]> = []
  const s = await serve(t, {
    allowedOrigins: (origin, request) => {
      seen.push([origin, request.url])
      return origin === 'https://good.example' || origin === undefined
    }
  })
  await s.open({ origin: 'https://good.example' })
  await s.open()
  t.equal((await refusedUpgrade(s.url, { origin: 'https://bad.example' })).status, 403)
  t.same(seen.map(([o]) => o), ['https://good.example', undefined, 'https://bad.example'], 'called with the Origin (undefined when missing)')
  t.match(seen[0][1], /^\/ws/, 'called with the request')
})

t.test('allowedOrigins function (async)', async (t) => {
  const s = await serve(t, {
    allowedOrigins: async (origin) => {
      await new Promise((resolve) => setImmediate(resolve))
      return origin === 'https://good.example'
    }
  })
  await s.open({ origin: 'https://good.example' })
  const r = await refusedUpgrade(s.url, { origin: 'https://bad.example' })
  t.equal(r.status, 403)
  checkBody(t, r.body, 403, 'Forbidden')
  t.equal((await refusedUpgrade(s.url)).status, 403, 'async false for a missing Origin')
})

t.test("allowedOrigins '*' checks nothing", async (t) => {
  const s = await serve(t, { allowedOrigins: '*' })
  await s.open({ origin: 'https://anything.example' })
  await s.open({ origin: 'null' })
  await s.open()
  t.equal(s.app.rooms.stats().connections, 3)
})

function authServer (t: Test, authenticate: (token: string) => any, extra: Record<string, unknown> = {}) {
  const calls: string[] = []
  return {
    calls,
    s: serve(t, {
      authenticate: async (token) => {
        calls.push(token)
        return authenticate(token)
      },
      ...extra
    })
  }
}

t.test('authenticate: no token is 401', async (t) => {
  const { s: sp, calls } = authServer(t, () => ({ id: 'u1' }))
  const s = await sp
  const r = await refusedUpgrade(s.url)
  t.equal(r.status, 401)
  checkBody(t, r.body, 401, 'Unauthorized')
  t.equal((await refusedUpgrade(s.url + '?token=')).status, 401, 'an empty ?token= is no token')
  t.equal((await refusedUpgrade(s.url, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).status, 401, 'a non-Bearer Authorization is no token')
  t.same(calls, [], 'authenticate is not called without a token')
  t.equal(s.app.rooms.stats().connections, 0)
})

t.test('origin is checked before the token', async (t) => {
  const { s: sp, calls } = authServer(t, () => ({ id: 'u1' }), { allowedOrigins: ['https://app.example'] })
  const s = await sp
  t.equal((await refusedUpgrade(s.url, { origin: 'https://evil.example' })).status, 403, 'bad origin, no token: 403')
  t.equal((await refusedUpgrade(s.url + `?token=${SECRET}`, { origin: 'https://evil.example' })).status, 403, 'bad origin, token: 403')
  t.same(calls, [], 'authenticate not called when the origin is refused')
})

t.test('authenticate returning null, undefined, or throwing is 403', async (t) => {
  const { s: sp } = authServer(t, (token) => {
    if (token === 'null') return null
    if (token === 'undefined') return undefined
    if (token === 'throw') throw new Error('auth backend down')
    return { id: 'u-' + token }
  })
  const s = await sp
  for (const token of ['null', 'undefined', 'throw']) {
    const r = await refusedUpgrade(s.url + '?token=' + token)
    t.equal(r.status, 403, `authenticate → ${token}: 403`)
    checkBody(t, r.body, 403, 'Forbidden')
  }
  t.equal(s.app.rooms.stats().connections, 0, 'no connection allocated')
  const c = await s.open({ headers: { authorization: 'Bearer ok' } })
  t.strictSame(c.welcome.user, { id: 'u-ok' })
})

t.test('authenticate throwing synchronously is 403', async (t) => {
  const s = await serve(t, { authenticate: () => { throw new Error('sync boom') } })
  t.equal((await refusedUpgrade(s.url + '?token=abc')).status, 403)
})

t.test('authenticate rejecting is 403', async (t) => {
  const s = await serve(t, { authenticate: () => Promise.reject(new Error('async boom')) })
  t.equal((await refusedUpgrade(s.url + '?token=abc')).status, 403)
})

t.test('any other path is 404 (Fastify)', async (t) => {
  const s = await serve(t, { authenticate: () => ({ id: 'x' }) })
  const r = await refusedUpgrade(s.base + '/other')
  t.equal(r.status, 404)
  checkBody(t, r.body, 404, 'Not Found')
  t.equal((await refusedUpgrade(s.base + '/ws/extra')).status, 404)
})

t.test('token sources', async (t) => {
  const seen: Array<{ token: string, url: string }> = []
  const s = await serve(t, {
    authenticate: (token, request) => {
      seen.push({ token, url: request.url })
      return { id: 'user-' + token, role: 'tester' }
    }
  })

  t.test('query ?token=', async (t) => {
    const c = await s.open({ path: '/ws?token=q1' })
    t.strictSame(c.welcome.user, { id: 'user-q1', role: 'tester' }, 'welcome carries the User from authenticate')
  })
  t.test('Authorization: Bearer', async (t) => {
    const c = await s.open({ headers: { authorization: 'Bearer h1' } })
    t.equal(c.welcome.user.id, 'user-h1')
  })
  t.test('subprotocol bearer.<token> beside rooms.v1, answered rooms.v1', async (t) => {
    const c = await s.open({ protocols: ['rooms.v1', 'bearer.p1'] })
    t.equal(c.welcome.user.id, 'user-p1')
    t.equal(c.ws.protocol, 'rooms.v1', 'the server selects rooms.v1')
  })
  t.test('subprotocol order does not matter', async (t) => {
    const c = await s.open({ protocols: ['bearer.p2', 'rooms.v1'] })
    t.equal(c.welcome.user.id, 'user-p2')
    t.equal(c.ws.protocol, 'rooms.v1')
  })
  t.test('query wins over header and subprotocol', async (t) => {
    const c = await s.open({ path: '/ws?token=q2', headers: { authorization: 'Bearer h2' }, protocols: ['rooms.v1', 'bearer.p3'] })
    t.equal(c.welcome.user.id, 'user-q2')
  })
  t.test('header wins over subprotocol', async (t) => {
    const c = await s.open({ headers: { authorization: 'Bearer h3' }, protocols: ['rooms.v1', 'bearer.p4'] })
    t.equal(c.welcome.user.id, 'user-h3')
    t.equal(c.ws.protocol, 'rooms.v1')
  })
  t.test('a user connected with a token works through the protocol', async (t) => {
    const a = await s.open({ path: '/ws?token=alice' })
    const b = await s.open({ path: '/ws?token=bob' })
    t.equal((await a.request({ type: 'join', room: 'r' })).type, 'ack')
    t.equal((await b.request({ type: 'join', room: 'r' })).type, 'ack')
    b.send({ type: 'message', room: 'r', text: 'hi' })
    t.strictSame(await a.next({ type: 'chat' }), { type: 'chat', room: 'r', user: { id: 'user-bob', role: 'tester' }, text: 'hi' })
  })
  t.test('authenticate receives the request', async (t) => {
    // Called once per upgrade, with the token the rules above chose.
    t.same(seen.map((s) => s.token), ['q1', 'h1', 'p1', 'p2', 'q2', 'h3', 'alice', 'bob'])
    t.match(seen[0].url, /^\/ws/)
  })
})

t.test('the token never appears in a log line', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {
    allowedOrigins: (origin) => origin !== 'https://evil.example',
    authenticate: (token) => {
      if (token === SECRET) return { id: 'alice' }
      if (token === SECRET + 'x') throw new Error('backend unavailable')
      return null
    }
  }, undefined, { logger: { level: 'trace', stream: logs.stream } })

  const a = await s.open({ path: `/ws?token=${SECRET}` })
  const b = await s.open({ headers: { authorization: `Bearer ${SECRET}` } })
  const c = await s.open({ protocols: ['rooms.v1', `bearer.${SECRET}`] })
  a.send({ type: 'join', room: 'r', id: 1 })
  await a.next({ type: 'ack' })
  a.send('not json')
  await a.next({ type: 'error' })
  t.equal((await refusedUpgrade(s.url + `?token=${SECRET}`, { origin: 'https://evil.example' })).status, 403)
  t.equal((await refusedUpgrade(s.url + `?token=${SECRET}y`)).status, 403)
  t.equal((await refusedUpgrade(s.url + `?token=${SECRET}x`)).status, 403)
  t.equal((await refusedUpgrade(s.url, { headers: { authorization: `Bearer ${SECRET}y` } })).status, 403)
  t.equal((await refusedUpgrade(s.url, { protocols: ['rooms.v1', `bearer.${SECRET}y`] })).status, 403)
  await a.close()
  await b.close()
  await c.close()
  await s.app.close()

  t.ok(logs.lines.length > 5, `the logger wrote lines (${logs.lines.length})`)
  t.ok(logs.lines.some((l) => l.includes('/ws')), 'request lines were logged')
  const leaking = logs.lines.filter((l) => l.includes(SECRET))
  t.same(leaking, [], 'no log line contains the token')
})
