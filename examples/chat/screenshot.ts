// Takes docs/images/chat.png: the chat page with two people talking, at a laptop's window size.
// Starts the example on a free port with a throwaway store, opens the page twice in headless
// Chromium (two browser profiles, so two names), has them exchange a few messages and saves what
// the first one sees.
//
//   npm run build && npx tsx examples/chat/screenshot.ts [out.png]
//
// Env: CHROMIUM (default /usr/bin/chromium), COLOR_SCHEME (light or dark, default light).
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { build } from './server.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const out = resolve(process.argv[2] ?? resolve(root, 'docs/images/chat.png'))
const viewport = { width: 1100, height: 700 }

// Each person's browser key, fixed so that the picture comes out the same (ids, so colours) every time.
const KEYS: Record<string, string> = { Ada: '0'.repeat(32), Grace: '6'.repeat(32) }

async function open (browser: Browser, base: string, name: string, room: string): Promise<Page> {
  const context = await browser.newContext({
    viewport,
    deviceScaleFactor: 1,
    locale: 'en-GB',
    timezoneId: 'Europe/Paris',
    colorScheme: process.env.COLOR_SCHEME === 'dark' ? 'dark' : 'light'
  })
  await context.addInitScript((key) => { if (localStorage.getItem('chat.key') === null) localStorage.setItem('chat.key', key) }, KEYS[name])
  const page = await context.newPage()
  page.on('pageerror', (err) => { throw err })
  await page.goto(`${base}/#${encodeURIComponent(room)}`)
  await page.fill('#name', name)
  await page.click('#name-save')
  await page.locator('#status[data-state="open"]').waitFor()
  await page.locator('#text:enabled').waitFor()
  return page
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.press('#text', 'Enter')
  await page.locator('#log li.chat.mine .text', { hasText: text }).last().waitFor()
}

const app = await build({ dbPath: ':memory:' })
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no port')
const base = `http://127.0.0.1:${address.port}`
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars']
})
try {
  // Someone was here earlier: the first page loads this over REST.
  for (const text of ['Morning! Standup moved to 10:30 today.', 'Notes from yesterday are in the wiki.']) {
    await fetch(`${base}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'lobby', user: 'sam', name: 'Sam', text })
    })
  }
  const ada = await open(browser, base, 'Ada', 'lobby')
  // Ada has been to another room: the list on the left keeps it.
  await ada.fill('#room', 'release-1.0')
  await ada.click('#join')
  await ada.locator('#room-name', { hasText: 'release-1.0' }).waitFor()
  await ada.locator('#empty:visible').waitFor()
  await ada.click('#room-list button:text-is("lobby")')
  await ada.locator('#log li.chat').nth(1).waitFor()
  const grace = await open(browser, base, 'Grace', 'lobby')
  for (const page of [ada, grace]) await page.locator('#member-list li').nth(1).waitFor()
  await say(ada, 'Hi Grace, are you joining the review at 3?')
  await say(grace, 'Yes! I\'ll bring the latency numbers from the Redis run.')
  await say(grace, 'p99 went from 41 ms to 12 ms after the batching change.')
  await say(ada, 'Great, that\'s the one I wanted to see.')
  await say(ada, 'Sharing the link with the team.')
  await ada.locator('#log li.chat .text', { hasText: 'link with the team' }).waitFor()
  await ada.evaluate(() => { (document.activeElement as HTMLElement | null)?.blur() })
  await ada.mouse.move(viewport.width / 2, 10) // no hover highlight in the picture
  mkdirSync(dirname(out), { recursive: true })
  await ada.screenshot({ path: out })
  console.log(`saved ${out}`)
} finally {
  await browser.close()
  await app.close()
}
