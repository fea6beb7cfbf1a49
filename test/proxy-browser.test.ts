// The chat example behind a real nginx, in headless Chromium, as a new user would try it:
// with the documented config two pages join and chat; with the config of nginx's own WebSocket
// page (no Host line) the page never connects and the server log says why, once; and with TLS
// ended at nginx (a self-signed certificate) in front of the plain upstream, the page talks wss://.
// No Chromium or (in CI) no nginx is a failure, not a skip: .ci/run installs both.
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { build } from '../examples/chat/server.js'
import { loadOrCreateCertificate } from '../examples/secure/tls.js'
import { browserClientDir, CHROMIUM, CHROMIUM_ARGS } from './fixtures/browser.js'
import { nginxPageConfig, nginxSkipReason, documentedConfigFor, startNginx, type Nginx } from './fixtures/nginx.js'
import { captureLogs, type CapturedLogs, until } from './helpers.js'

const skip = nginxSkipReason()

interface ChatUpstream {
  app: FastifyInstance
  port: number
  logs: CapturedLogs
  /** What each upgrade request looked like on arrival at the upstream. */
  upgrades: Array<{ forwardedProto: unknown, encrypted: boolean }>
}

async function chatUpstream (t: Test, clientDir: string): Promise<ChatUpstream> {
  const logs = captureLogs()
  const app = await build({ dbPath: ':memory:', clientDir, logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  const upgrades: ChatUpstream['upgrades'] = []
  app.addHook('onRequest', async (request) => {
    if (request.headers.upgrade === undefined) return
    upgrades.push({ forwardedProto: request.headers['x-forwarded-proto'], encrypted: 'encrypted' in request.raw.socket })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, logs, upgrades }
}

async function nginx (t: Test, httpBlock: (port: number) => string): Promise<Nginx> {
  const proxy = await startNginx(httpBlock)
  t.teardown(() => proxy.stop())
  return proxy
}

async function joinRoom (page: Page, room: string, name: string): Promise<void> {
  // A first visit asks for a name (the page connects with it), then joins the lobby.
  try {
    await page.fill('#name', name)
    await page.click('#name-save')
    await page.fill('#room', room)
    await page.click('#join')
    await page.locator('#room-name', { hasText: `# ${room}` }).waitFor()
    await page.locator('#status[data-state="open"]').waitFor()
    await page.locator('#text:enabled').waitFor()
  } catch (err) {
    const state = await page.evaluate(() => ({
      hash: location.hash,
      roomName: document.querySelector('#room-name')?.textContent,
      status: document.querySelector('#status')?.textContent,
      dialogOpen: (document.querySelector('#name-dialog') as HTMLDialogElement | null)?.open,
      roomInput: (document.querySelector('#room') as HTMLInputElement | null)?.value,
      nameInput: (document.querySelector('#name') as HTMLInputElement | null)?.value,
      text: (document.querySelector('#text') as HTMLInputElement | null)?.value,
      focused: document.activeElement?.id,
      log: document.querySelector('#log')?.textContent
    })).catch((e: Error) => e.message)
    throw new Error(`${(err as Error).message.split('\n')[0]} page state: ${JSON.stringify(state)}`)
  }
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.click('#send')
  await page.locator('#log li.chat.mine', { hasText: text }).last().waitFor()
}

/** Two pages of `base` join one room and a message crosses; returns the WebSocket URLs they opened. */
async function chatAcross (t: Test, browser: Browser, base: string): Promise<string[]> {
  // Two browser profiles: each page keeps its own name.
  const contexts = [await browser.newContext({ ignoreHTTPSErrors: true }), await browser.newContext({ ignoreHTTPSErrors: true })]
  t.teardown(() => Promise.all(contexts.map((c) => c.close())))
  // A loaded CI machine (tap runs two files at once, and the README test installs and compiles
  // beside this one) can take longer than Playwright's 30 s default to start a page through TLS.
  for (const context of contexts) context.setDefaultTimeout(90_000)
  const problems: string[] = []
  const sockets: string[] = []
  const pages = [await contexts[0].newPage(), await contexts[1].newPage()]
  for (const [i, page] of pages.entries()) {
    page.on('pageerror', (err) => problems.push(`page ${i + 1}: ${err.message}`))
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`page ${i + 1} console: ${msg.text()}`) })
    page.on('websocket', (ws) => sockets.push(ws.url()))
    await page.goto(base + '/')
    await joinRoom(page, 'behind-nginx', `user ${i + 1}`)
  }
  const [one, two] = pages
  await say(one, 'hello through nginx')
  await two.locator('#log li.chat', { hasText: 'hello through nginx' }).waitFor()
  await say(two, 'and back')
  await one.locator('#log li.chat', { hasText: 'and back' }).waitFor()
  t.pass('a message crossed both ways between the two pages')
  t.same(problems, [], 'no page errors')
  return sockets
}

t.test('the chat page in Chromium behind nginx', { skip }, async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} exists (install Debian's chromium package; .ci/run does)`)
  const clientDir = browserClientDir('client-build-proxy')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())

  t.test('the documented config: both pages join and chat', async (t) => {
    const chat = await chatUpstream(t, clientDir)
    const proxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: chat.port }))
    const sockets = await chatAcross(t, browser, `http://127.0.0.1:${proxy.port}`)
    t.same(sockets, [`ws://127.0.0.1:${proxy.port}/ws`, `ws://127.0.0.1:${proxy.port}/ws`], 'each page opened its socket through nginx')
    t.equal(chat.app.rooms.stats().rejectedUpgrades, 0, 'no upgrade refused')
    // The chat example builds its Fastify without trustProxy (docs/proxy.md sets it), so nginx's
    // X-Forwarded-For is not used for request.ip: exactly the one per-IP warning says so.
    const warnings = chat.logs.records().filter((r) => r.level >= 40)
    t.equal(warnings.length, 1, 'one warning, and not about the Origin')
    t.match(warnings[0]?.msg, "An upgrade carried X-Forwarded-For but Fastify's trustProxy is off")
  })

  t.test("nginx's page config (no Host line): the page never connects; one warning names both values and the fix", async (t) => {
    const chat = await chatUpstream(t, clientDir)
    const proxy = await nginx(t, (port) => nginxPageConfig({ port, upstreamPort: chat.port }))
    const context = await browser.newContext()
    t.teardown(() => context.close())
    const page = await context.newPage()
    const sockets: string[] = []
    page.on('websocket', (ws) => sockets.push(ws.url()))
    await page.goto(`http://127.0.0.1:${proxy.port}/`)
    t.equal(await page.locator('#status').getAttribute('data-state'), 'idle', 'the page itself loaded through nginx')
    // Picking a name connects (to the lobby).
    await page.fill('#name', 'someone')
    await page.click('#name-save')
    // The client retries a handshake that closed before opening (a browser cannot see the 403).
    await until(() => chat.app.rooms.stats().rejectedUpgrades >= 2, 10_000, 'two refused upgrades')
    t.not(await page.locator('#status').getAttribute('data-state'), 'open', 'the page is not connected')
    t.equal(chat.app.rooms.stats().connections, 0, 'no connection on the server')
    t.ok(sockets.length >= 2, `the page tried ${sockets.length} times`)

    const origin = `http://127.0.0.1:${proxy.port}`
    const host = `127.0.0.1:${chat.port}`
    const warnings = chat.logs.records().filter((r) => r.level === 40)
    t.equal(warnings.length, 1, 'exactly one warning')
    t.match(warnings[0], { origin, host, hostFrom: 'Host' })
    t.match(warnings[0]?.msg, `Origin "${origin}" does not match the host "${host}" it was compared with (from the Host header)`)
    t.match(warnings[0]?.msg, 'Fix one of: forward the Host header with its port (nginx: proxy_set_header Host $http_host; $host drops the port)')
    const later = chat.logs.records().filter((r) => r.level === 30 && r.msg === 'WebSocket upgrade refused: Origin not allowed')
    t.ok(later.length >= 1, `the later refusals are info lines (${later.length})`)
    t.match(later[0], { origin, host })
  })

  t.test('TLS ended at nginx (the documented config, a self-signed certificate) in front of a plain upstream: wss:// in the page', async (t) => {
    const certDir = mkdtempSync(join(tmpdir(), 'fastify-ws-rooms-cert-'))
    t.teardown(() => rmSync(certDir, { recursive: true, force: true }))
    const { certPath, keyPath } = await loadOrCreateCertificate(certDir)
    const chat = await chatUpstream(t, clientDir)
    const proxy = await nginx(t, (port) => documentedConfigFor({ port, upstreamPort: chat.port, tls: { certPath, keyPath } }))
    const sockets = await chatAcross(t, browser, `https://127.0.0.1:${proxy.port}`)
    t.same(sockets, [`wss://127.0.0.1:${proxy.port}/ws`, `wss://127.0.0.1:${proxy.port}/ws`], 'the pages opened wss:// sockets')
    t.equal(chat.app.rooms.stats().rejectedUpgrades, 0, 'no upgrade refused: https://… Origin against the forwarded Host, default-port rules under https')
    t.same(chat.upgrades, [{ forwardedProto: 'https', encrypted: false }, { forwardedProto: 'https', encrypted: false }],
      'the upstream got plain-HTTP upgrades with X-Forwarded-Proto: https')
  })
})
