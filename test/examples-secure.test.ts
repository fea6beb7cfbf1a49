// examples/secure: wss:// with a generated certificate (trusted as the CA, so TLS is really
// verified), the Origin allowlist, signed tokens through every place a client can put them, and
// sessions that end with the token (4001), after which the example client logs in again.
import t, { type Test } from 'tap'
import { createHmac } from 'node:crypto'
import { request as httpsRequest } from 'node:https'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build, loadOrCreateCertificate, signToken, verifyToken, type SecureOptions } from '../examples/secure/server.js'
import { connectSecure } from '../examples/secure/client.js'
import { connect, refusedUpgrade } from './helpers.js'

const SECRET = 'test-secret-0123456789abcdef-0123456789'

const certDir = mkdtempSync(join(tmpdir(), 'ws-rooms-secure-'))
t.teardown(() => rmSync(certDir, { recursive: true, force: true }))
const certificate = await loadOrCreateCertificate(certDir)
const ca = certificate.cert

interface Started { origin: string, url: string, port: number }

async function start (t: Test, options: SecureOptions = {}): Promise<Started> {
  const app = await build({ certDir, tokenSecret: SECRET, ...options })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { port: address.port, origin: `https://127.0.0.1:${address.port}`, url: `wss://127.0.0.1:${address.port}/ws` }
}

function https (port: number, method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port,
      path,
      method,
      ca,
      headers: body === undefined ? {} : { 'content-type': 'application/json' }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
    })
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

async function login (port: number, name: string): Promise<string> {
  const res = await https(port, 'POST', '/api/token', { name })
  if (res.status !== 200) throw new Error(`login failed: ${res.status}`)
  return res.body.token
}

t.test('the certificate: generated once with the loopback names, then reused', async (t) => {
  t.equal(certificate.generated, true)
  const again = await loadOrCreateCertificate(certDir)
  t.equal(again.generated, false)
  t.ok(again.cert.equals(certificate.cert) && again.key.equals(certificate.key))

  const half = mkdtempSync(join(tmpdir(), 'ws-rooms-secure-half-'))
  t.teardown(() => rmSync(half, { recursive: true, force: true }))
  writeFileSync(join(half, 'key.pem'), certificate.key)
  await t.rejects(loadOrCreateCertificate(half), /found only key\.pem/, 'half a pair is never overwritten')
})

t.test('HTTPS routes: GET / and the demo login', async (t) => {
  const { port } = await start(t)
  t.same(await https(port, 'GET', '/'), { status: 200, body: 'WebSocket server running' })

  const res = await https(port, 'POST', '/api/token', { name: 'alice' })
  t.equal(res.status, 200)
  t.match(res.body, { token: String, tokenType: 'Bearer', expiresIn: 600, user: { id: 'alice', name: 'alice' } })
  t.match(verifyToken(res.body.token, SECRET), { sub: 'alice', name: 'alice' })
  t.equal((await https(port, 'POST', '/api/token', { name: 'not a name!' })).status, 400)
  t.equal((await https(port, 'POST', '/api/token', {})).status, 400)
})

t.test('handshake refusals: bad origin 403, no token 401, forged or expired token 403', async (t) => {
  const { port, url, origin } = await start(t)
  const token = await login(port, 'alice')

  const badOrigin = await refusedUpgrade(`${url}?token=${token}`, { ca, origin: 'https://evil.example' })
  t.equal(badOrigin.status, 403, 'foreign origin')
  t.match(badOrigin.body, { statusCode: 403, message: 'Origin not allowed' })
  t.equal((await refusedUpgrade(`${url}?token=${token}`, { ca, origin: `http://127.0.0.1:${port}` })).status, 403, 'http:// origin')
  t.equal((await refusedUpgrade(`${url}?token=${token}`, { ca })).status, 403, 'no origin')

  const noToken = await refusedUpgrade(url, { ca, origin })
  t.equal(noToken.status, 401)
  t.match(noToken.body, { statusCode: 401, message: 'Authentication required' })

  const forged = signToken('alice', 'another-secret-0123456789abcdef-012345', 3600)
  const [body, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString())
  const promoted = Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url') + '.' + signature
  const expired = signToken('alice', SECRET, 60, { now: Date.now() - 2 * 3600_000 })
  for (const [name, bad] of [['forged', forged], ['tampered', promoted], ['expired', expired], ['garbage', 'not-a-token']]) {
    const refused = await refusedUpgrade(`${url}?token=${encodeURIComponent(bad)}`, { ca, origin })
    t.equal(refused.status, 403, name)
    t.match(refused.body, { statusCode: 403, message: 'Invalid token' }, name)
  }
})

t.test('a good token via query, header and subprotocol gets a welcome with the user', async (t) => {
  const { port, url, origin } = await start(t)
  const token = await login(port, 'alice')

  const viaQuery = await connect(`${url}?token=${token}`, { ca, origin })
  t.teardown(() => viaQuery.close())
  t.same(viaQuery.welcome.user, { id: 'alice', name: 'alice' })

  const viaHeader = await connect(url, { ca, origin, headers: { authorization: `Bearer ${token}` } })
  t.teardown(() => viaHeader.close())
  t.same(viaHeader.welcome.user, { id: 'alice', name: 'alice' })

  // What a browser does: the token rides in a subprotocol, and the server answers rooms.v1.
  const viaProtocol = await connect(url, { ca, origin, protocols: ['rooms.v1', `bearer.${token}`] })
  t.teardown(() => viaProtocol.close())
  t.same(viaProtocol.welcome.user, { id: 'alice', name: 'alice' })
  t.equal(viaProtocol.ws.protocol, 'rooms.v1')

  // Any of the default origins works (the allowlist follows the bound port).
  const viaLocalhost = await connect(`${url}?token=${token}`, { ca, origin: `https://localhost:${port}` })
  t.teardown(() => viaLocalhost.close())
  t.equal(viaLocalhost.welcome.user.id, 'alice')
})

t.test('authenticated users message each other; user:<id> rooms are private', async (t) => {
  const { port, url, origin } = await start(t)
  const alice = await connect(url, { ca, origin, protocols: ['rooms.v1', `bearer.${await login(port, 'alice')}`] })
  const bob = await connect(url, { ca, origin, protocols: ['rooms.v1', `bearer.${await login(port, 'bob')}`] })
  t.teardown(() => Promise.all([alice.close(), bob.close()]))

  t.same(await alice.request({ type: 'join', room: 'lobby' }, 1), { type: 'ack', id: 1 })
  t.same(await bob.request({ type: 'join', room: 'lobby' }, 1), { type: 'ack', id: 1 })
  const bobJoined = await alice.next((m) => m.event === 'join' && m.user.id === 'bob')
  t.same(bobJoined, { type: 'system', event: 'join', room: 'lobby', user: { id: 'bob', name: 'bob' }, text: 'User joined room' })

  // A client-sent `user` is ignored: bob sees who really sent it.
  t.same(await alice.request({ type: 'message', room: 'lobby', text: 'hi bob', user: { id: 'bob' } }, 2), { type: 'ack', id: 2 })
  t.same(await bob.next({ type: 'chat' }), { type: 'chat', room: 'lobby', user: { id: 'alice', name: 'alice' }, text: 'hi bob' })

  t.match(await bob.request({ type: 'join', room: 'user:alice' }, 3), { type: 'error', code: 'forbidden', id: 3 })
  t.same(await alice.request({ type: 'join', room: 'user:alice' }, 3), { type: 'ack', id: 3 })
})

t.test('a configured allowedOrigins list replaces the default one', async (t) => {
  const { port, url, origin } = await start(t, { allowedOrigins: ['https://app.example'] })
  const token = await login(port, 'carol')
  const client = await connect(`${url}?token=${token}`, { ca, origin: 'https://app.example' })
  t.teardown(() => client.close())
  t.equal(client.welcome.user.id, 'carol')
  t.equal((await refusedUpgrade(`${url}?token=${token}`, { ca, origin })).status, 403)
})

t.test('signToken / verifyToken', async (t) => {
  const now = Date.UTC(2030, 0, 1)
  const token = signToken('u1', SECRET, 60, { name: 'User One', now })
  t.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'only subprotocol-safe characters')
  t.same(verifyToken(token, SECRET, now), { sub: 'u1', name: 'User One', iat: now / 1000, exp: now / 1000 + 60 })
  t.same(verifyToken(token, Buffer.from(SECRET), now + 59_999)?.sub, 'u1', 'a Buffer secret is the same key')
  t.equal(verifyToken(token, SECRET, now + 60_000), null, 'expired at exp')
  t.equal(verifyToken(token, SECRET + 'x', now), null, 'other secret')

  const [body, signature] = token.split('.')
  const flipped = signature.slice(0, -2) + (signature.at(-2) === 'A' ? 'B' : 'A') + signature.at(-1)
  for (const bad of [
    '', '.', body, `${body}.`, `.${signature}`, `${body}.${signature}.x`, `${body}.${flipped}`,
    `${body}x.${signature}`, `${body}.${signature}=`, `${body}.${signature.slice(0, -1)}`,
    `${body}.${signature}`.replace(/[a-z]/, '+'), 'a'.repeat(3000) + '.' + signature
  ]) {
    t.equal(verifyToken(bad, SECRET, now), null, JSON.stringify(bad.slice(0, 40)))
  }
  // Correctly signed but not our claims shape: still refused.
  const sign = (claims: unknown): string => {
    const b = Buffer.from(JSON.stringify(claims)).toString('base64url')
    return `${b}.${createHmac('sha256', SECRET).update(b).digest('base64url')}`
  }
  t.ok(verifyToken(sign({ sub: 'x', iat: 0, exp: 2e9 }), SECRET, now), 'the helper signs like signToken')
  for (const claims of [null, [], 'x', { sub: '', iat: 0, exp: 2e9 }, { sub: 1, iat: 0, exp: 2e9 }, { sub: 'x', iat: 0 }, { sub: 'x', iat: 0, exp: '2e9' }, { sub: 'x', name: 5, iat: 0, exp: 2e9 }]) {
    t.equal(verifyToken(sign(claims), SECRET, now), null, JSON.stringify(claims))
  }

  t.throws(() => signToken('', SECRET, 60), /userId/)
  t.throws(() => signToken('u', SECRET, 0), /ttlSeconds/)
  t.throws(() => signToken('u', SECRET, Number.NaN), /ttlSeconds/)
  t.throws(() => signToken('u', 'short', 60), /at least 32 bytes/)
  await t.rejects(build({ certDir, tokenSecret: 'short' }), /at least 32 bytes/, 'a short secret fails at startup')
})

t.test('a token turns over in place: same connection, no close, and the other member sees no leave or join', async (t) => {
  const { port, url, origin } = await start(t, { tokenTtl: 2 })
  const base = `https://127.0.0.1:${port}`
  // The watcher's token outlives the test (the login's would expire in 2 s too).
  const watcher = await connect(url, { ca, origin, protocols: ['rooms.v1', `bearer.${signToken('walt', SECRET, 600, { name: 'walt' })}`] })
  t.teardown(() => watcher.close())
  t.same(await watcher.request({ type: 'join', room: 'lobby' }, 1), { type: 'ack', id: 1 })
  const tokens: string[] = []
  const client = connectSecure(base, 'dora', { ca, onToken: (token) => tokens.push(token) })
  t.teardown(() => client.close())
  const seen: string[] = []
  for (const event of ['open', 'close', 'reconnecting'] as const) client.on(event, () => seen.push(event))
  await client.join('lobby')
  const connectionId = client.connectionId
  await watcher.next((m) => m.event === 'join' && m.user.id === 'dora')
  const renewed = await new Promise<any>((resolve) => client.on('session', resolve))
  t.ok(renewed.expiresAt > Date.now(), 'a later expiry')
  t.equal(tokens.length, 2, 'logged in again for the refresh')
  // Past the first token's expiry (2 s): still the same connection.
  await new Promise((resolve) => setTimeout(resolve, 1200))
  await client.send('lobby', 'still here')
  t.match(await watcher.next({ type: 'chat' }), { text: 'still here', user: { id: 'dora' } })
  t.same(seen, ['open'], 'never closed, never reconnected')
  t.equal(client.connectionId, connectionId)
  t.same(watcher.received.filter((m) => m.type === 'system' && m.user?.id === 'dora').map((m) => m.event), ['join'], 'the watcher saw dora join once, and nothing since')
})

t.test('grants: user:<id> rooms private, announcements read-only, nothing else', async (t) => {
  const { port, url, origin } = await start(t)
  const client = await connect(url, { ca, origin, protocols: ['rooms.v1', `bearer.${await login(port, 'gus')}`] })
  t.teardown(() => client.close())
  t.same(await client.request({ type: 'join', room: 'announcements' }, 1), { type: 'ack', id: 1 })
  t.match(await client.request({ type: 'message', room: 'announcements', text: 'hi' }, 2), { type: 'error', code: 'forbidden', id: 2 })
  t.match(await client.request({ type: 'join', room: 'elsewhere' }, 3), { type: 'error', code: 'forbidden', id: 3 })
  t.same(await client.request({ type: 'join', room: 'user:gus' }, 4), { type: 'ack', id: 4 })
})

t.test('with refresh off, sessions end with the token (4001); the example client logs in again and is back at once', async (t) => {
  const { port } = await start(t, { tokenTtl: 2 })
  const base = `https://127.0.0.1:${port}`
  const tokens: string[] = []
  const client = connectSecure(base, 'dora', { ca, onToken: (token) => tokens.push(token), refresh: false })
  t.teardown(() => client.close())
  const seen: any[] = []
  for (const event of ['open', 'close', 'reconnecting'] as const) client.on(event, (info: unknown) => seen.push([event, info]))
  await client.join('lobby')

  const reopened = new Promise<any>((resolve) => client.on('open', (info) => { if (info.reconnected) resolve(info) }))
  const info = await reopened
  t.same(info.rooms, ['lobby'], 'the room is rejoined')
  t.same(seen.map(([event]) => event), ['open', 'close', 'reconnecting', 'open'])
  t.same(seen[1][1], { code: 4001, reason: 'Token expired', willReconnect: true })
  t.same(seen[2][1], { attempt: 1, delayMs: 0 }, 'no backoff after an expiry')
  t.equal(tokens.length, 2, 'one login per connection')
  t.not(tokens[1], tokens[0], 'a fresh token')
  t.equal(client.user?.id, 'dora')
})

t.test('the welcome carries the session\'s expiry: the token\'s exp', async (t) => {
  const { port, url, origin } = await start(t)
  const token = await login(port, 'erin')
  const client = await connect(url, { ca, origin, protocols: ['rooms.v1', `bearer.${token}`] })
  t.teardown(() => client.close())
  t.equal(client.welcome.expiresAt, verifyToken(token, SECRET)!.exp * 1000)
  t.same(client.welcome.user, { id: 'erin', name: 'erin' })
})
