// The secure example's page in a real browser (headless Chromium over https with the example's
// self-signed certificate): two people in the lobby with 3-second tokens. Each page refreshes its
// token in place before it expires; neither page shows the other leave or join again, nor a
// closed connection, and messages still flow after the first tokens' expiry. The page is served
// with a Content-Security-Policy that allows scripts from its own origin only.
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page } from 'playwright-core'
import { build } from '../examples/secure/server.js'
import { browserClientDir, CHROMIUM, CHROMIUM_ARGS } from './fixtures/browser.js'

const artifacts = join(fileURLToPath(new URL('..', import.meta.url)), 'test', 'artifacts')
const certDir = mkdtempSync(join(tmpdir(), 'ws-rooms-secure-page-'))
t.teardown(() => rmSync(certDir, { recursive: true, force: true }))

const lines = async (page: Page, kind?: string): Promise<string[]> =>
  await page.locator(kind === undefined ? '#log li' : `#log li.${kind}`).allTextContents()

t.test('a token turns over in the page: refreshed in place, the other page sees no leave or join', async (t) => {
  const app = await build({ certDir, tokenSecret: 'page-test-secret-0123456789abcdef-0123', tokenTtl: 3, clientDir: browserClientDir('secure-page-client') })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `https://127.0.0.1:${port}`

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const problems: string[] = []
  const open = async (name: string): Promise<Page> => {
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage()
    page.on('pageerror', (err) => problems.push(`${name}: ${err.message}`))
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`${name} console: ${msg.text()}`) })
    const response = await page.goto(`${base}/page?name=${name}`)
    t.match(response?.headers()['content-security-policy'], /script-src 'self'/)
    return page
  }
  const ann = await open('ann')
  await ann.locator('#log li.join', { hasText: 'ann joined lobby' }).waitFor()
  const ben = await open('ben')
  await ann.locator('#log li.join', { hasText: 'ben joined lobby' }).waitFor()

  // Both tokens turn over at least twice (3 s tokens, refreshed in their second half).
  for (const page of [ann, ben]) await page.locator('#log li.session').nth(1).waitFor({ timeout: 15_000 })
  await ben.fill('#text', 'still here')
  await ben.press('#text', 'Enter')
  await ann.locator('#log li.chat', { hasText: 'ben: still here' }).waitFor()

  t.same(await lines(ann, 'join'), ['ann joined lobby', 'ben joined lobby'], 'ann saw ben join once')
  t.same(await lines(ann, 'leave'), [], 'and never leave')
  t.same(await lines(ben, 'leave'), [])
  t.same((await lines(ben, 'join')).filter((l) => l.startsWith('ann')), [], 'ben (who came later) never saw ann join again')
  t.same([...await lines(ann, 'close'), ...await lines(ben, 'close')], [], 'no page lost its connection')
  t.same(problems, [])
  mkdirSync(artifacts, { recursive: true })
  await ann.screenshot({ path: join(artifacts, 'browser-secure.png') })
})
