// Behind a reverse proxy, without one: the same-origin check against X-Forwarded-Host and
// RFC 7239 `Forwarded: host=` (only when Fastify's trustProxy trusts the peer), and the warnings
// that explain a refusal a proxy caused, each logged once per plugin instance. The test client
// plays the proxy here (it sets the headers itself, from 127.0.0.1); test/proxy-nginx.test.ts
// goes through a real nginx.
import t, { type Test } from 'tap'
import type { FastifyServerOptions } from 'fastify'
import { parseForwarded } from '../lib/proxy-hints.js'
import type { WsRoomsOptions } from '../types/index.js'
import { captureLogs, refusedUpgrade, serve, type CapturedLogs } from './helpers.js'

const SECRET = 'pr0xy-t0ken-9d2e71'

async function logged (t: Test, options: WsRoomsOptions = {}, fastify: Partial<FastifyServerOptions> = {}) {
  const logs = captureLogs()
  const s = await serve(t, options, undefined, { logger: { level: 'info', stream: logs.stream }, ...fastify })
  return { s, logs }
}

function warnings (logs: CapturedLogs): any[] {
  return logs.records().filter((r) => r.level === 40)
}

function infos (logs: CapturedLogs, msg: string): any[] {
  return logs.records().filter((r) => r.level === 30 && r.msg === msg)
}

t.test('parseForwarded (RFC 7239)', async (t) => {
  const asObjects = (header: string) => parseForwarded(header)?.map((element) => Object.fromEntries(element))
  t.same(asObjects('for=192.0.2.60;proto=http;by=203.0.113.43'), [{ for: '192.0.2.60', proto: 'http', by: '203.0.113.43' }])
  t.same(asObjects('for="[2001:db8:cafe::17]:4711"'), [{ for: '[2001:db8:cafe::17]:4711' }], 'a quoted value may hold ":"')
  t.same(asObjects('for=192.0.2.43, for=198.51.100.17;Host="chat.example.com:8443"'),
    [{ for: '192.0.2.43' }, { for: '198.51.100.17', host: 'chat.example.com:8443' }], 'elements in order, names lower-cased')
  t.same(asObjects('host="a\\"b,c;d" ; for=x'), [{ host: 'a"b,c;d', for: 'x' }], 'quoted-pair unescaped, "," and ";" inside quotes kept')
  t.same(asObjects('for=a,, for=b ,'), [{ for: 'a' }, { for: 'b' }], 'empty list elements dropped')
  t.same(asObjects(''), [], 'empty header: no elements')
  for (const bad of ['host=example.com:8080', 'for', 'for=', '=x', 'for="open', 'for=a;for=b', 'for=a b', 'for="a"x', 'host="x\\']) {
    t.equal(parseForwarded(bad), undefined, `${JSON.stringify(bad)} does not parse`)
  }
})

t.test('same-origin without trustProxy: forwarded hosts are ignored, the comparison stays with Host', async (t) => {
  const { s } = await logged(t)
  const origin = 'http://app.example:8080'
  for (const headers of [{ 'x-forwarded-host': 'app.example:8080' }, { forwarded: 'for=192.0.2.1;host="app.example:8080"' }] as Array<Record<string, string>>) {
    t.equal((await refusedUpgrade(s.url, { origin, headers })).status, 403, `${Object.keys(headers)[0]} ignored: 403`)
  }
  const c = await s.open({ origin: `http://127.0.0.1:${s.port}`, headers: { 'x-forwarded-host': 'evil.example' } })
  t.equal(c.welcome.event, 'welcome', 'the Host still decides: Origin equal to Host is allowed')
  // An AWS load balancer adds its listener's port to Host by default.
  await s.open({ origin: 'https://chat.example.com', headers: { host: 'chat.example.com:443' } })
  t.pass('Host with the default port of the Origin\'s scheme (chat.example.com:443) equals https://chat.example.com')
  t.equal((await refusedUpgrade(s.url, { origin: 'https://chat.example.com', headers: { host: 'chat.example.com:8443' } })).status, 403,
    'another port is refused')
})

t.test('same-origin with trustProxy trusting the peer: X-Forwarded-Host (Fastify) and Forwarded host= (the plugin)', async (t) => {
  for (const [name, trustProxy] of [['true', true], ["'127.0.0.1'", '127.0.0.1'], ['a function', (address: string) => address === '127.0.0.1']] as const) {
    t.test(`trustProxy: ${name}`, async (t) => {
      const { s } = await logged(t, {}, { trustProxy })
      const origin = 'http://app.example:8080'
      await s.open({ origin, headers: { 'x-forwarded-host': 'app.example:8080' } })
      await s.open({ origin, headers: { 'x-forwarded-host': 'evil.example, app.example:8080' } })
      t.pass('X-Forwarded-Host (its last entry) is compared with the Origin')
      await s.open({ origin, headers: { forwarded: 'for=192.0.2.1;host="app.example:8080";proto=http' } })
      await s.open({ origin, headers: { forwarded: 'for=192.0.2.9;host=evil.example, for=192.0.2.1;host="app.example:8080"' } })
      t.pass('Forwarded: the host= of the last element (the one the trusted peer added)')
      await s.open({ origin: 'https://app.example', headers: { forwarded: 'for=192.0.2.1;host=app.example;proto=https' } })
      t.pass('default ports normalise the same way on both sides')
      const refused = async (headers: Record<string, string>, o = origin) => (await refusedUpgrade(s.url, { origin: o, headers })).status
      t.equal(await refused({ 'x-forwarded-host': 'app.example:8080' }, 'http://evil.example'), 403, 'another Origin is still refused')
      t.equal(await refused({ forwarded: 'for=192.0.2.1;host="app.example:8080"' }, 'http://app.example:8081'), 403, 'another port is still refused')
      t.equal(await refused({ forwarded: 'for=192.0.2.1;host="app.example:8080", for=192.0.2.2' }), 403, 'a last element without host=: Host decides')
      t.equal(await refused({ forwarded: 'for=192.0.2.1;host=app.example:8080' }), 403, 'a Forwarded that does not parse: Host decides')
      t.equal(await refused({ 'x-forwarded-host': 'app.example:8080', forwarded: 'host="evil.example"' }, 'http://evil.example'), 403,
        'X-Forwarded-Host wins over Forwarded, as Fastify reads it')
      t.equal(await refused({ forwarded: 'host="evil.example@app.example:8080"' }), 403, 'a host with userinfo is no host')
      t.equal(await refused({ forwarded: 'host="app.example:8080/x"' }), 403, 'a host with a path is no host')
    })
  }
})

t.test('trustProxy that does not trust the peer: forwarded hosts ignored, and the warning says so', async (t) => {
  const { s, logs } = await logged(t, {}, { trustProxy: '10.0.0.1' })
  const r = await refusedUpgrade(s.url, { origin: 'http://app.example:8080', headers: { forwarded: 'for=192.0.2.1;host="app.example:8080"' } })
  t.equal(r.status, 403)
  const warning = warnings(logs).find((w) => w.msg.startsWith('WebSocket upgrade refused'))
  t.match(warning?.msg, /Forwarded "for=192\.0\.2\.1;host=\\"app\.example:8080\\"" was ignored: Fastify's trustProxy does not trust the peer 127\.0\.0\.1/)
  t.match(warning?.ignoredForwardedHost, { header: 'Forwarded', why: "Fastify's trustProxy does not trust the peer 127.0.0.1" })
  t.ok(warnings(logs).some((w) => w.msg.startsWith("An upgrade carried Forwarded but Fastify's trustProxy does not trust the peer 127.0.0.1")),
    'and the per-IP warning: the Forwarded address is not used either')
})

t.test('Origin refusals: one warning with both values and the fixes when a proxy is the likely cause, info after', async (t) => {
  const { s, logs } = await logged(t)
  const host = `127.0.0.1:${s.port}`
  // Not proxy-made: a site name in Host, another site's Origin, no proxy headers (a cross-site page).
  const crossSite = await refusedUpgrade(s.url, { origin: 'https://evil.example', headers: { host: 'chat.example.com' } })
  t.equal(crossSite.status, 403)
  t.equal(warnings(logs).length, 0, 'a cross-site refusal with nothing proxy-like is not a warning')
  t.match(infos(logs, 'WebSocket upgrade refused: Origin not allowed'), [{ origin: 'https://evil.example', host: 'chat.example.com', hostFrom: 'Host' }],
    'the info line names the host it was compared with')

  // The nginx default: Host is the upstream's address, Origin the page's (the proxy's port).
  const origin = 'http://127.0.0.1:8080'
  for (let i = 0; i < 3; i++) t.equal((await refusedUpgrade(s.url, { origin })).status, 403)
  const warned = warnings(logs)
  t.equal(warned.length, 1, 'one warning for three proxy-like refusals')
  t.match(warned[0], { origin, host, hostFrom: 'Host' })
  t.match(warned[0].msg, `Origin "${origin}" does not match the host "${host}" it was compared with (from the Host header)`)
  t.match(warned[0].msg, 'forward the Host header with its port (nginx: proxy_set_header Host $http_host; $host drops the port)')
  t.match(warned[0].msg, "or send X-Forwarded-Host and set Fastify's trustProxy to the proxy's address")
  t.match(warned[0].msg, "or list the page's origin in allowedOrigins")
  t.equal(infos(logs, 'WebSocket upgrade refused: Origin not allowed').length, 3, 'the other refusals are info lines (1 cross-site + 2 later)')
  t.equal(s.app.rooms.stats().rejectedUpgrades, 4)
})

t.test('the Origin warning when X-Forwarded-Host came but trustProxy is off, and never with the token', async (t) => {
  const { s, logs } = await logged(t, { authenticate: (token) => (token === SECRET ? { id: 'u1' } : null) })
  const r = await refusedUpgrade(`${s.url}?token=${SECRET}`, {
    origin: 'https://chat.example.com',
    headers: { 'x-forwarded-host': 'chat.example.com', authorization: `Bearer ${SECRET}` },
    protocols: ['rooms.v1', `bearer.${SECRET}`]
  })
  t.equal(r.status, 403)
  const [warning] = warnings(logs)
  t.match(warning?.msg, /X-Forwarded-Host "chat\.example\.com" was ignored: Fastify's trustProxy is off\./)
  t.match(warning, { origin: 'https://chat.example.com', host: `127.0.0.1:${s.port}`, ignoredForwardedHost: { header: 'X-Forwarded-Host', value: 'chat.example.com' } })
  t.notOk(logs.lines.some((line) => line.includes(SECRET)), 'no log line holds the token')
})

t.test('an allowedOrigins list compares no host: its refusals stay at info', async (t) => {
  const { s, logs } = await logged(t, { allowedOrigins: ['https://app.example'] })
  t.equal((await refusedUpgrade(s.url, { origin: 'http://127.0.0.1:8080', headers: { 'x-forwarded-for': '192.0.2.1' } })).status, 403)
  t.equal(warnings(logs).filter((w) => /Origin/.test(w.msg)).length, 0)
  t.equal(infos(logs, 'WebSocket upgrade refused: Origin not allowed').length, 1)
})

t.test('X-Forwarded-For without trustProxy: one warning per plugin instance naming the problem and the fix', async (t) => {
  const { s, logs } = await logged(t, { maxConnectionsPerIp: 3 })
  for (let i = 1; i <= 3; i++) await s.open({ headers: { 'x-forwarded-for': `10.1.0.${i}` } })
  const r = await refusedUpgrade(s.url, { headers: { 'x-forwarded-for': '10.1.0.4' } })
  t.equal(r.status, 429, 'the 4th client behind the "proxy" is turned away: all share 127.0.0.1')
  await refusedUpgrade(s.url, { headers: { 'x-forwarded-for': '10.1.0.5' } })
  const warned = warnings(logs)
  t.equal(warned.length, 1, 'exactly one warning for five upgrades with X-Forwarded-For')
  t.match(warned[0], { ip: '127.0.0.1', header: 'X-Forwarded-For', maxConnectionsPerIp: 3 })
  t.match(warned[0].msg, "An upgrade carried X-Forwarded-For but Fastify's trustProxy is off, so request.ip is the proxy's address (127.0.0.1)")
  t.match(warned[0].msg, 'turns client number 4 away with HTTP 429')
  t.match(warned[0].msg, "set Fastify's trustProxy to the proxy's address (e.g. Fastify({ trustProxy: '127.0.0.1' }))")
  t.same(infos(logs, 'WebSocket upgrade refused: too many connections from this address').map((r) => r.ip), ['127.0.0.1', '127.0.0.1'],
    'the 429 refusals are info lines with the address counted')

  // Another plugin instance (another server in this process) warns once for itself.
  const other = await logged(t, { maxConnectionsPerIp: 3 })
  await other.s.open({ headers: { forwarded: 'for=10.2.0.1' } })
  await other.s.open({ headers: { forwarded: 'for=10.2.0.2' } })
  t.equal(warnings(other.logs).length, 1, 'the second instance: one warning, for Forwarded')
  t.match(warnings(other.logs)[0].msg, "An upgrade carried Forwarded but Fastify's trustProxy is off")
  t.equal(warnings(logs).length, 1, 'the first instance logged nothing more')
})

t.test('trustProxy trusting the peer: request.ip is the forwarded address, the per-IP limit counts it, no warning', async (t) => {
  const { s, logs } = await logged(t, { maxConnectionsPerIp: 2 }, { trustProxy: '127.0.0.1' })
  const ips: string[] = []
  s.app.rooms.on('connect', (conn) => { ips.push(conn.ip) })
  await s.open({ headers: { 'x-forwarded-for': '10.1.0.1' } })
  await s.open({ headers: { 'x-forwarded-for': '10.1.0.1' } })
  t.equal((await refusedUpgrade(s.url, { headers: { 'x-forwarded-for': '10.1.0.1' } })).status, 429, 'a third from 10.1.0.1: 429')
  await s.open({ headers: { 'x-forwarded-for': '10.1.0.2' } })
  t.same(ips, ['10.1.0.1', '10.1.0.1', '10.1.0.2'])
  t.equal(warnings(logs).length, 0, 'no warning')
})

t.test('trustProxy trusting the peer, Forwarded without X-Forwarded-For: Fastify ignores it for request.ip, warned once', async (t) => {
  const { s, logs } = await logged(t, {}, { trustProxy: '127.0.0.1' })
  await s.open({ headers: { forwarded: 'for=10.1.0.1' } })
  await s.open({ headers: { forwarded: 'for=10.1.0.2' } })
  const warned = warnings(logs)
  t.equal(warned.length, 1)
  t.match(warned[0].msg, 'An upgrade carried Forwarded but no X-Forwarded-For; Fastify reads the client address from X-Forwarded-For only')
  t.match(warned[0].msg, 'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for')
})

t.test('no per-IP limit, no per-IP warning', async (t) => {
  const { s, logs } = await logged(t, { maxConnectionsPerIp: 0 })
  await s.open({ headers: { 'x-forwarded-for': '10.1.0.1' } })
  t.equal(warnings(logs).length, 0)
})
