// Takes docs/images/metrics.png: Prometheus's own graph page (its expression browser) showing the
// plugin's series while the example chat server carries some traffic. Grafana is not needed:
// this is the real Prometheus of the test suite (test/fixtures/prometheus.ts, the scrape config
// of docs/metrics.md), scraping every second.
//
//   npx tsx scripts/metrics-screenshot.ts [out.png]
//
// Env: CHROMIUM (default /usr/bin/chromium). Needs /usr/bin/prometheus (Debian's package).
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { build, tokenFor } from '../examples/chat/server.js'
import { connect, refusedUpgrade, type TestClient } from '../test/helpers.js'
import { startPrometheus } from '../test/fixtures/prometheus.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = resolve(process.argv[2] ?? resolve(root, 'docs/images/metrics.png'))
const TRAFFIC_MS = Number(process.env.TRAFFIC_MS ?? 45_000)

const app = await build({ dbPath: ':memory:', metrics: true })
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as { port: number }).port
const ws = `ws://127.0.0.1:${port}/ws`
const prometheus = await startPrometheus(`127.0.0.1:${port}`)
const clients: TestClient[] = []
try {
  const names = ['ada', 'grace', 'linus', 'barbara', 'ken', 'margaret']
  for (const [i, name] of names.entries()) {
    const client = await connect(ws, { protocols: ['rooms.v1', 'bearer.' + tokenFor(name, String(i).repeat(32))] })
    clients.push(client)
    await client.request({ type: 'join', room: i % 2 === 0 ? 'lobby' : 'release-1.0' })
  }
  // Traffic: posts and ephemeral messages, a few refusals, refused upgrades, people leaving and coming back.
  const end = Date.now() + TRAFFIC_MS
  for (let tick = 0; Date.now() < end; tick++) {
    const client = clients[tick % clients.length]
    const room = (tick % clients.length) % 2 === 0 ? 'lobby' : 'release-1.0'
    client.send({ type: tick % 3 === 0 ? 'post' : 'message', room, text: `message ${tick}`, id: tick })
    if (tick % 25 === 0) client.send({ type: 'message', room: 'not-joined', text: 'x', id: `r${tick}` })
    if (tick % 60 === 0) await refusedUpgrade(ws)
    if (tick % 90 === 45) {
      const leaving = clients.pop()!
      leaving.ws.close(1000)
      await leaving.closed
      clients.push(await connect(ws, { protocols: ['rooms.v1', 'bearer.' + tokenFor('visitor', 'f'.repeat(32))] }))
      await clients[clients.length - 1].request({ type: 'join', room: 'lobby' })
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const panels = [
    'sum by (type) (rate(ws_rooms_frames_received_total[10s]))',
    'sum by (code) (rate(ws_rooms_refused_total[10s]))',
    'histogram_quantile(0.99, sum by (type, le) (rate(ws_rooms_handler_duration_seconds_bucket[10s])))'
  ]
  const query = panels.map((expr, i) => `g${i}.expr=${encodeURIComponent(expr)}&g${i}.tab=0&g${i}.range_input=1m`).join('&')
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars']
  })
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1 })
    await page.goto(`http://127.0.0.1:${prometheus.port}/graph?${query}`)
    await page.waitForTimeout(5000)
    // The whole page in one viewport: a full-page capture would paint the fixed menu bar midway.
    const height = await page.evaluate(() => document.documentElement.scrollHeight)
    await page.setViewportSize({ width: 1200, height })
    await page.waitForTimeout(1000)
    await page.screenshot({ path: out })
    console.log(`wrote ${out}`)
  } finally {
    await browser.close()
  }
} finally {
  for (const client of clients) client.ws.terminate()
  await prometheus.stop()
  await app.close()
}
