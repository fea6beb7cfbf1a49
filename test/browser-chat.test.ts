// The chat example in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core opens the page twice, both join one room, a message typed in one appears in
// the other; HTML typed as a message stays text; the member list and count follow joins and
// leaves; a connection cut by the server recovers the posts made meanwhile from the room's
// history; the server restarts on the same port (a new history: recovery fails) and both pages
// say so, reload the room over REST, and talk again. Screenshots go to test/artifacts/.
// No Chromium is a failure, not a skip: CI installs it (.ci/run).
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { build } from '../examples/chat/server.js'
import { isAddressInUse, reservedPort, retryAddressInUse } from './helpers.js'
import { browserClientDir, CHROMIUM, CHROMIUM_ARGS } from './fixtures/browser.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const artifacts = join(root, 'test', 'artifacts')

async function startOn (clientDir: string, dbPath: string, port: number): Promise<{ app: FastifyInstance, port: number }> {
  const app = await build({ dbPath, clientDir })
  try {
    await app.listen({ port, host: '127.0.0.1' })
  } catch (err) {
    await app.close()
    throw err
  }
  return { app, port }
}

/**
 * The server restarts on its port (the pages reconnect to it), so it takes one outside the range
 * listen(0) draws from: the test file running beside this one cannot be handed it meanwhile.
 */
async function start (clientDir: string, dbPath: string): Promise<{ app: FastifyInstance, port: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(clientDir, dbPath, await reservedPort())
    } catch (err) {
      if (!isAddressInUse(err) || attempt >= 5) throw err
    }
  }
}

async function joinRoom (page: Page, room: string): Promise<void> {
  await page.fill('#room', room)
  await page.click('#join')
  await page.locator('#status[data-state="open"]').waitFor()
  await page.locator('#text:enabled').waitFor()
}

/** Wait until the page's member count reads `size online`; the list then has that many users here. */
async function members (page: Page, size: number): Promise<void> {
  await page.locator('#member-count', { hasText: new RegExp(`^${size} online$`) }).waitFor()
  await page.locator('#member-list li').nth(size - 1).waitFor()
  if (await page.locator('#member-list li').count() !== size) throw new Error(`expected ${size} members listed`)
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.click('#send')
  // Posted, stored and pushed back to the sender as well.
  await page.locator('#log li.chat.mine', { hasText: text }).last().waitFor()
}

t.test('the chat page in headless Chromium: two pages, one room, messages across, a server restart', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} exists (install Debian's chromium package; .ci/run does)`)
  mkdirSync(artifacts, { recursive: true })
  const clientDir = browserClientDir('client-build')

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  // A file, so the messages outlive the restart below (the room's history does not).
  const dir = mkdtempSync(join(tmpdir(), 'ws-rooms-browser-chat-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dbPath = join(dir, 'chat.db')
  let server = await start(clientDir, dbPath)
  t.teardown(() => server.app.close())
  const base = `http://127.0.0.1:${server.port}`

  const problems: string[] = []
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } })
  const pages = [await context.newPage(), await context.newPage()]
  const sockets: string[] = []
  for (const [i, page] of pages.entries()) {
    page.on('pageerror', (err) => problems.push(`page ${i + 1}: ${err.message}`))
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`page ${i + 1} console: ${msg.text()}`) })
    page.on('websocket', (ws) => sockets.push(ws.url()))
  }
  const [one, two] = pages

  for (const page of pages) {
    await page.goto(base + '/')
    t.equal(await page.locator('#status').getAttribute('data-state'), 'idle', 'not connected before the first join')
  }
  await joinRoom(one, 'browser-room')
  await joinRoom(two, 'browser-room')
  t.match(await one.locator('#status').textContent(), /^Connected as anon-/)
  t.same(sockets, [`ws://127.0.0.1:${server.port}/ws`, `ws://127.0.0.1:${server.port}/ws`],
    'each page opened one socket, to the relative /ws resolved against the page')
  await one.locator('#log li.system', { hasText: 'joined' }).waitFor()
  for (const page of pages) await members(page, 2)
  const oneUser = (await one.locator('#status').textContent())!.replace('Connected as ', '')
  t.same(await one.locator('#member-list li').allTextContents(), [`${oneUser} (you)`, (await two.locator('#status').textContent())!.replace('Connected as ', '')],
    'page one lists itself and page two')

  await say(one, 'hello from page one')
  await two.locator('#log li.chat', { hasText: 'hello from page one' }).waitFor()
  t.equal(await two.locator('#log li.chat.mine').count(), 0, 'page two shows it as someone else\'s')
  t.equal(await one.locator('#log li.chat', { hasText: 'hello from page one' }).count(), 1, 'the sender shows its message once')

  const html = '<img src=x onerror="window.__xss = 1"><b>bold?</b>'
  await say(two, html)
  const received = one.locator('#log li.chat', { hasText: 'bold?' })
  await received.waitFor()
  t.equal(await received.evaluate((li) => li.lastChild?.textContent), html, 'HTML arrives as text')
  t.equal(await received.locator('img, b').count(), 0, 'no element was created from it')
  t.equal(await one.evaluate(() => (window as any).__xss), undefined, 'no script ran')
  await two.screenshot({ path: join(artifacts, 'browser-chat.png') })

  // A page loaded after the messages were posted gets them from the history endpoint.
  const late = await context.newPage()
  late.on('pageerror', (err) => problems.push(`late page: ${err.message}`))
  await late.goto(base + '/')
  await joinRoom(late, 'browser-room')
  await late.locator('#log li.chat', { hasText: 'hello from page one' }).waitFor()
  t.equal(await late.locator('#log li.chat').count(), 2, 'history: both messages, once each')
  await members(one, 3)
  await late.close()
  await members(one, 2)

  // The server cuts page one's connection (1012: come back); posts made before it is back are
  // recovered from the room's history when it rejoins.
  const [oneMember] = (await server.app.rooms.members('browser-room')).filter((m) => m.user.id === oneUser)
  const cut = server.app.rooms.connection(oneMember.connectionId)!
  let closedOnServer!: () => void
  const gone = new Promise<void>((resolve) => { closedOnServer = resolve })
  server.app.rooms.on('disconnect', (conn) => { if (conn.id === cut.id) closedOnServer() })
  cut.close(1012, 'test')
  await gone
  await fetch(base + '/api/messages', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: 'browser-room', user: 'rest', text: 'posted while page one was away' })
  })
  await one.locator('#log li.system', { hasText: 'Reconnected' }).waitFor()
  await one.locator('#log li.chat', { hasText: 'posted while page one was away' }).waitFor()
  t.equal(await one.locator('#log li.chat', { hasText: 'posted while page one was away' }).count(), 1, 'the post made while away shows once')
  t.equal(await one.locator('#log li.notice').count(), 0, 'recovered: no reload notice')
  await two.locator('#log li.chat', { hasText: 'posted while page one was away' }).waitFor()

  // Restart the server on the same port: both pages reconnect and rejoin by themselves.
  const port = server.port
  await server.app.close()
  for (const page of pages) await page.locator('#status[data-state="reconnecting"]').waitFor()
  server = await retryAddressInUse(async () => await startOn(clientDir, dbPath, port))
  for (const page of pages) {
    // A new server: its room history is new, so what was missed cannot be replayed; the page says
    // so and reloads the room from the REST endpoint (the messages are in the database file).
    await page.locator('#log li.notice', { hasText: 'could not be recovered' }).waitFor()
    await page.locator('#status[data-state="open"]').waitFor()
    await page.locator('#log li.chat', { hasText: 'posted while page one was away' }).waitFor()
    const shown = []
    for (const text of ['hello from page one', 'bold?', 'posted while page one was away']) shown.push(await page.locator('#log li.chat', { hasText: text }).count())
    t.same(shown, [1, 1, 1], 'reloaded: every stored message once')
    t.equal(await page.locator('#log li.chat').count(), 3, 'and nothing else')
    await members(page, 2)
  }
  await say(two, 'after the restart')
  await one.locator('#log li.chat', { hasText: 'after the restart' }).waitFor()
  // Once: a page that rejoined twice (or was delivered the message twice) would show it twice.
  t.equal(await one.locator('#log li.chat', { hasText: 'after the restart' }).count(), 1, 'a message crosses after the restart, once: both pages rejoined the room')
  await one.screenshot({ path: join(artifacts, 'browser-chat-after-restart.png') })
  t.ok(existsSync(join(artifacts, 'browser-chat.png')), 'screenshot written to test/artifacts/browser-chat.png')

  // The browser logs a failed WebSocket handshake as a console error while the server is down.
  t.same(problems.filter((p) => !/WebSocket connection to .* failed/.test(p)), [], 'no page errors')
  await context.close()
})
