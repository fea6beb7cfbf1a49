// Takes docs/images/asyncapi.png: the chat example's AsyncAPI document (fastify.rooms.asyncapi())
// rendered by AsyncAPI's own React component in headless Chromium, as a reader of the document
// would see it. The component is not a dependency of this package: install it anywhere and say where.
//
//   npm install --prefix /tmp/aa @asyncapi/react-component@2
//   ASYNCAPI_REACT=/tmp/aa/node_modules/@asyncapi/react-component npx tsx scripts/asyncapi-screenshot.ts [out.png]
//
// Env: CHROMIUM (default /usr/bin/chromium).
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { build } from '../examples/chat/server.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = resolve(process.argv[2] ?? resolve(root, 'docs/images/asyncapi.png'))
const component = process.env.ASYNCAPI_REACT
if (component === undefined) throw new Error('set ASYNCAPI_REACT to the folder of an installed @asyncapi/react-component')

const app = await build({ dbPath: ':memory:' })
await app.ready()
const doc = app.rooms.asyncapi({ title: 'Chat example', version: '1.0.0' })
await app.close()

const page = `<!doctype html><meta charset="utf-8">
<style>${readFileSync(join(component, 'styles/default.min.css'), 'utf8')}</style>
<div id="asyncapi"></div>
<script>${readFileSync(join(component, 'browser/standalone/index.js'), 'utf8')}</script>
<script>
AsyncApiStandalone.render({ schema: ${JSON.stringify(JSON.stringify(doc))}, config: { show: { sidebar: true } } }, document.getElementById('asyncapi'))
</script>`
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] })
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  tab.on('console', (m) => { if (m.type() === 'error') console.error('page:', m.text()) })
  tab.on('pageerror', (e) => { console.error('page error:', e.message) })
  await tab.setContent(page)
  await tab.locator('h1', { hasText: 'Chat example' }).first().waitFor({ state: 'attached', timeout: 30_000 })
  await tab.waitForTimeout(1000) // the component lays out its sections after the first paint
  // The application's own request type (`post`), its payload and its ack expanded.
  const post = tab.getByText('send_post', { exact: true }).filter({ visible: true }).first()
  await post.scrollIntoViewIfNeeded()
  // Expand the payload (and the ack) of that operation: the "Expand all" buttons that follow it.
  await tab.evaluate(() => {
    const all = [...document.querySelectorAll('*')]
    const start = all.findIndex((e) => e.textContent === 'send_post' && (e as HTMLElement).offsetParent !== null)
    const buttons = all.slice(start).filter((e) => e.childElementCount === 0 && e.textContent === 'Expand all' && (e as HTMLElement).offsetParent !== null)
    for (const button of buttons.slice(0, 2)) (button as HTMLElement).click()
  })
  await tab.waitForTimeout(300)
  const at = await post.boundingBox()
  await tab.screenshot({ path: out, fullPage: true, clip: { x: 0, y: Math.max(0, (at?.y ?? 0) - 70 + (await tab.evaluate(() => window.scrollY))), width: 1280, height: 900 } })
  console.log(`wrote ${out}`)
} finally {
  await browser.close()
}
