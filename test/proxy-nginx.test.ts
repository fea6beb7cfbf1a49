// Through a real nginx (Debian's 1.22, started by the test on a free port with a config it
// writes): the documented config, the config of nginx's own WebSocket page and its usual variants,
// trustProxy and the per-IP limit with many clients, and idle connections against
// proxy_read_timeout. Clients are `ws`; test/proxy-browser.test.ts drives Chromium.
// Clients bind distinct loopback addresses (127.0.1.x; all of 127/8 is loopback on Linux) so that
// nginx sees them as different machines.
import t, { type Test } from 'tap'
import type { FastifyServerOptions } from 'fastify'
import type { WsRoomsOptions } from '../types/index.js'
import { nginxSkipReason, documentedConfigFor, startNginx, type Nginx } from './fixtures/nginx.js'
import {
  captureLogs, closedWithin, connect, join, refusedUpgrade, roundTrip, serve, until,
  type CapturedLogs, type Fixture, type TestClient
} from './helpers.js'

const skip = nginxSkipReason()
const ORIGIN_REFUSED = 'WebSocket upgrade refused: Origin not allowed'

interface Upstream extends Fixture { logs: CapturedLogs }

async function upstream (t: Test, options: WsRoomsOptions = {}, fastify: Partial<FastifyServerOptions> = {}): Promise<Upstream> {
  const logs = captureLogs()
  const s = await serve(t, options, undefined, { logger: { level: 'info', stream: logs.stream }, ...fastify })
  return { ...s, logs }
}

async function nginx (t: Test, httpBlock: (port: number) => string): Promise<Nginx> {
  const proxy = await startNginx(httpBlock)
  t.teardown(() => proxy.stop())
  return proxy
}

const warnings = (logs: CapturedLogs): any[] => logs.records().filter((r) => r.level === 40)
const infos = (logs: CapturedLogs, msg: string): any[] => logs.records().filter((r) => r.level === 30 && r.msg === msg)

/** `n` clients through `url`, opened 25 at a time; `options(i)` per client. */
async function connectAll (s: Fixture, url: string, n: number, options: (i: number) => Parameters<typeof connect>[1]): Promise<TestClient[]> {
  const clients: TestClient[] = []
  for (let start = 0; start < n; start += 25) {
    const batch = []
    for (let i = start; i < Math.min(n, start + 25); i++) batch.push(connect(url, options(i)).then((c) => s.track(c)))
    clients.push(...await Promise.all(batch))
  }
  return clients
}

t.test('through nginx', { skip }, async (t) => {
  t.test("nginx's WebSocket page config and its variants: refusals, and the warning that names the fix", async (t) => {
    const pageUpstream = await upstream(t)
    const hostUpstream = await upstream(t)
    const xfhIgnored = await upstream(t)
    const trusting = await upstream(t, {}, { trustProxy: '127.0.0.1' })
    const location = (path: string, upstreamPort: number, extra: string[] = []): string => [
      `    location ${path} {`,
      `        proxy_pass http://127.0.0.1:${upstreamPort}/;`,
      '        proxy_http_version 1.1;',
      '        proxy_set_header Upgrade $http_upgrade;',
      '        proxy_set_header Connection "upgrade";',
      ...extra.map((line) => `        ${line}`),
      '    }'
    ].join('\n')
    const proxy = await nginx(t, (port) => [
      'server {',
      `    listen 127.0.0.1:${port};`,
      location('/page/', pageUpstream.port),
      location('/host/', hostUpstream.port, ['proxy_set_header Host $host;']),
      location('/xfh-untrusted/', xfhIgnored.port, ['proxy_set_header X-Forwarded-Host $http_host;']),
      location('/xfh/', trusting.port, ['proxy_set_header X-Forwarded-Host $http_host;']),
      location('/forwarded/', trusting.port, ['proxy_set_header Forwarded "for=$remote_addr;host=\\"$http_host\\";proto=$scheme";']),
      '}'
    ].join('\n'))
    const origin = `http://127.0.0.1:${proxy.port}`
    const url = (path: string): string => `ws://127.0.0.1:${proxy.port}${path}ws`

    t.test('the page config exactly (no Host line): 403, one warning with both values and the fixes, then info', async (t) => {
      const first = await refusedUpgrade(url('/page/'), { origin })
      t.equal(first.status, 403, 'refused with 403 through nginx')
      t.match(first.body, { statusCode: 403, error: 'Forbidden', message: 'Origin not allowed' }, "the plugin's JSON body came through")
      t.equal((await refusedUpgrade(url('/page/'), { origin })).status, 403, 'and again')
      const [warning, ...more] = warnings(pageUpstream.logs)
      t.equal(more.length, 0, 'exactly one warning for two refusals')
      const upstreamHost = `127.0.0.1:${pageUpstream.port}`
      t.match(warning, { origin, host: upstreamHost, hostFrom: 'Host' }, 'nginx sent its upstream as Host')
      t.match(warning?.msg, `Origin "${origin}" does not match the host "${upstreamHost}" it was compared with (from the Host header)`)
      t.match(warning?.msg, 'forward the Host header with its port (nginx: proxy_set_header Host $http_host; $host drops the port)')
      t.match(warning?.msg, "set Fastify's trustProxy to the proxy's address")
      t.match(warning?.msg, 'allowedOrigins')
      t.match(infos(pageUpstream.logs, ORIGIN_REFUSED), [{ origin, host: upstreamHost }], 'the second refusal: info, with the host')
      t.comment(`warning: ${warning?.msg}`)
    })

    t.test('proxy_set_header Host $host: the port is dropped, still 403; the warning says so', async (t) => {
      t.equal((await refusedUpgrade(url('/host/'), { origin })).status, 403)
      t.match(warnings(hostUpstream.logs), [{ origin, host: '127.0.0.1', hostFrom: 'Host' }], 'Host arrived without the port: same hostname, other port')
    })

    t.test('X-Forwarded-Host without trustProxy: ignored, 403; the warning says it was ignored and why', async (t) => {
      t.equal((await refusedUpgrade(url('/xfh-untrusted/'), { origin })).status, 403)
      const [warning] = warnings(xfhIgnored.logs)
      t.match(warning?.msg, `X-Forwarded-Host "127.0.0.1:${proxy.port}" was ignored: Fastify's trustProxy is off.`)
    })

    t.test('X-Forwarded-Host $http_host with trustProxy: admitted; another Origin still 403', async (t) => {
      const c = trusting.track(await connect(url('/xfh/'), { origin }))
      t.equal(c.welcome.event, 'welcome', 'the page config plus one line and trustProxy works')
      t.equal((await refusedUpgrade(url('/xfh/'), { origin: 'http://evil.example' })).status, 403, 'a cross-site Origin is refused')
      t.equal((await refusedUpgrade(url('/xfh/'), { origin: `http://127.0.0.1:${proxy.port + 1}` })).status, 403, 'another port is refused')
    })

    t.test('RFC 7239 Forwarded host= with trustProxy (read by the plugin; Fastify does not): admitted', async (t) => {
      const c = trusting.track(await connect(url('/forwarded/'), { origin }))
      t.equal(c.welcome.event, 'welcome')
      t.equal((await refusedUpgrade(url('/forwarded/'), { origin: 'http://evil.example' })).status, 403, 'a cross-site Origin is refused')
      t.same(warnings(trusting.logs).filter((w) => w.origin === 'http://evil.example'), [],
        'a cross-site Origin against a host the trusted proxy forwarded is no proxy problem: info, not a warning')
      t.match(infos(trusting.logs, ORIGIN_REFUSED), [{ origin: 'http://evil.example', host: `127.0.0.1:${proxy.port}`, hostFrom: 'X-Forwarded-Host' },
        { origin: 'http://evil.example', host: `127.0.0.1:${proxy.port}`, hostFrom: 'Forwarded' }], 'the info lines name the forwarded host and its header')
    })
  })

  t.test("the documented config with trustProxy: '127.0.0.1': 110 clients from 110 addresses admitted, the limit counts each address", async (t) => {
    const s = await upstream(t, {}, { trustProxy: '127.0.0.1' })
    const proxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: s.port }))
    const url = `ws://127.0.0.1:${proxy.port}/ws`
    const origin = `http://127.0.0.1:${proxy.port}`
    const ips: string[] = []
    s.app.rooms.on('connect', (conn) => { ips.push(conn.ip) })

    // A browser-like pair first: same-origin through the documented config, and a message across.
    const [a, b] = [s.track(await connect(url, { origin })), s.track(await connect(url, { origin }))]
    await join(a, 'lobby')
    await join(b, 'lobby')
    a.send({ type: 'message', room: 'lobby', text: 'through nginx' })
    t.match(await b.next({ type: 'chat' }), { room: 'lobby', text: 'through nginx' }, 'Origin equal to the page: admitted, and chat works')
    await a.close()
    await b.close()
    await until(() => s.app.rooms.stats().connections === 0)
    ips.length = 0

    const addresses = Array.from({ length: 110 }, (_, i) => `127.0.1.${i + 1}`)
    await connectAll(s, url, 110, (i) => ({ localAddress: addresses[i] }))
    t.equal(s.app.rooms.stats().connections, 110, '110 > maxConnectionsPerIp (100) clients through one nginx, all admitted')
    t.same([...ips].sort(), [...addresses].sort(), "request.ip is each client's own address, as nginx saw it")

    // 99 more from 127.0.1.1 fill its budget of 100; the next one is refused.
    await connectAll(s, url, 99, () => ({ localAddress: '127.0.1.1' }))
    const refused = await refusedUpgrade(url, { localAddress: '127.0.1.1' })
    t.equal(refused.status, 429, 'connection 101 from 127.0.1.1: 429')
    const spoofed = await refusedUpgrade(url, { localAddress: '127.0.1.1', headers: { 'x-forwarded-for': '10.9.9.9' } })
    t.equal(spoofed.status, 429, "a made-up X-Forwarded-For does not help: the client's own entry is not believed")
    const other = s.track(await connect(url, { localAddress: '127.0.1.2' }))
    t.equal(other.welcome.event, 'welcome', 'another address still gets in')
    t.same(infos(s.logs, 'WebSocket upgrade refused: too many connections from this address').map((r) => r.ip), ['127.0.1.1', '127.0.1.1'],
      'the 429s were logged at info with the forwarded address they counted')
    t.same(warnings(s.logs), [], 'no warning: nothing is misconfigured')
    t.equal(s.app.rooms.stats().connections, 210)
  })

  t.test('the documented nginx config without trustProxy: client 101 gets 429, one warning names the problem and the fix', async (t) => {
    const s = await upstream(t)
    const proxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: s.port }))
    const url = `ws://127.0.0.1:${proxy.port}/ws`
    const addresses = Array.from({ length: 101 }, (_, i) => `127.0.2.${i + 1}`)
    await connectAll(s, url, 100, (i) => ({ localAddress: addresses[i] }))
    t.equal(s.app.rooms.stats().connections, 100, '100 clients from 100 addresses admitted')
    const refused = await refusedUpgrade(url, { localAddress: addresses[100] })
    t.equal(refused.status, 429, 'client 101, from an address of its own, is refused: all of them are 127.0.0.1 to Fastify')
    const warned = warnings(s.logs)
    t.equal(warned.length, 1, 'exactly one warning for 101 upgrades carrying X-Forwarded-For')
    t.match(warned[0], { ip: '127.0.0.1', header: 'X-Forwarded-For', maxConnectionsPerIp: 100 })
    t.match(warned[0]?.msg, "An upgrade carried X-Forwarded-For but Fastify's trustProxy is off, so request.ip is the proxy's address (127.0.0.1)")
    t.match(warned[0]?.msg, 'turns client number 101 away with HTTP 429')
    t.match(warned[0]?.msg, "Fix: set Fastify's trustProxy to the proxy's address (e.g. Fastify({ trustProxy: '127.0.0.1' }))")
    t.match(infos(s.logs, 'WebSocket upgrade refused: too many connections from this address'), [{ ip: '127.0.0.1' }])
    t.comment(`warning: ${warned[0]?.msg}`)
  })

  t.test('trustProxy: true believes what the client wrote: one client admitted 105 times from made-up addresses', async (t) => {
    const s = await upstream(t, {}, { trustProxy: true })
    const proxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: s.port }))
    const url = `ws://127.0.0.1:${proxy.port}/ws`
    const ips: string[] = []
    s.app.rooms.on('connect', (conn) => { ips.push(conn.ip) })
    await connectAll(s, url, 105, (i) => ({ localAddress: '127.0.3.1', headers: { 'x-forwarded-for': `10.1.${i >> 8}.${i & 255}` } }))
    t.equal(s.app.rooms.stats().connections, 105, 'one address, 105 connections, no 429')
    t.equal(new Set(ips).size, 105, 'each counted under the address it made up')
    t.ok(ips.every((ip) => ip.startsWith('10.1.')), 'request.ip is the leftmost, client-written entry')
  })

  t.test('idle connections against the documented config with proxy_read_timeout 1s', async (t) => {
    const pinging = await upstream(t, { idleTimeout: 800 })
    const rare = await upstream(t, { idleTimeout: 10_000 })
    const pingingProxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: pinging.port, proxyReadTimeout: '1s' }))
    const rareProxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: rare.port, proxyReadTimeout: '1s' }))

    t.test('pings every 400 ms keep a silent client connected for 3.5 proxy_read_timeouts', async (t) => {
      const c = pinging.track(await connect(`ws://127.0.0.1:${pingingProxy.port}/ws`))
      let pings = 0
      c.ws.on('ping', () => { pings++ })
      await join(c, 'idle')
      let closed = false
      c.ws.once('close', () => { closed = true })
      await new Promise((resolve) => setTimeout(resolve, 3500))
      t.notOk(closed, 'still open after 3.5 s of client silence')
      t.ok(pings >= 5, `the plugin's pings crossed nginx (${pings})`)
      await roundTrip(c)
      t.pass('and a request still gets its answer')
    })

    t.test('pings every 5 s: nginx cuts the connection after proxy_read_timeout', async (t) => {
      const c = rare.track(await connect(`ws://127.0.0.1:${rareProxy.port}/ws`))
      await join(c, 'idle')
      const quietSince = Date.now()
      const closed = await closedWithin(c, 5000)
      const after = Date.now() - quietSince
      t.equal(closed.code, 1006, 'the client sees 1006 (no close frame: nginx dropped the TCP connection)')
      t.ok(after >= 900 && after < 3000, `cut after ${after} ms of silence (proxy_read_timeout 1s)`)
      await until(() => rare.app.rooms.stats().connections === 0, 5000, 'the server to drop the connection')
      t.pass('the server cleaned the connection up')
      t.comment(`nginx cut the idle connection after ${after} ms`)
    })
  })
})
