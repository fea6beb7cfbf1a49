// The typed client in headless Chromium, in a page served with `Content-Security-Policy:
// script-src 'self'` (no 'unsafe-eval'): the page's own `new Function` is refused, yet the client
// checks incoming events against the definition (an invalid one is dropped with `invalid_event`)
// and its typed requests get their results. The definition the page imports is the test's
// TypeBox definition, served as JSON Schema.
// No Chromium is a failure, not a skip (as in browser-chat.test.ts).
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join, normalize } from 'node:path'
import Fastify from 'fastify'
import { chromium } from 'playwright-core'
import wsRooms from '../lib/index.js'
import { browserClientDir, CHROMIUM, CHROMIUM_ARGS } from './fixtures/browser.js'
import { messages } from './fixtures/typed-messages.js'

const CSP = "script-src 'self'"

const PAGE_SCRIPT = `
import { connect } from '/client/index.js'
import { messages } from '/messages.js'
const results = { posted: [], errors: [], evalRefused: false }
window.results = results
try { new Function('return 1')() } catch (err) { results.evalRefused = err instanceof EvalError }
const client = connect('/ws', { messages, reconnect: false })
client.on('posted', (frame) => { results.posted.push(frame) })
client.on('error', (err) => { results.errors.push({ code: err.code, message: err.message }) })
await client.ready()
await client.join('lobby')
results.result = await client.request('post', { room: 'lobby', text: 'three' })
results.joined = true
`

t.test('under a CSP without unsafe-eval, events are checked and an invalid one is dropped', async (t) => {
  const clientDir = browserClientDir('browser-typed-csp-client')
  const app = Fastify({ logger: false })
  await app.register(wsRooms)
  const api = app.rooms.implement(messages, { post: (_conn, msg) => ({ id: msg.text.length }), count: () => ({ size: 0 }), typing: () => {} })
  app.get('/', async (_request, reply) => reply.header('content-security-policy', CSP).type('text/html')
    .send('<!doctype html><meta charset="utf-8"><title>typed</title><script type="module" src="/page.js"></script>'))
  app.get('/page.js', async (_request, reply) => reply.header('content-security-policy', CSP).type('text/javascript').send(PAGE_SCRIPT))
  app.get('/messages.js', async (_request, reply) => reply.type('text/javascript').send(`export const messages = ${JSON.stringify(messages)}\n`))
  app.get<{ Params: { '*': string } }>('/client/*', async (request, reply) => {
    const file = normalize(request.params['*'])
    if (file.startsWith('..')) return await reply.code(404).send()
    return await reply.type('text/javascript').send(await readFile(join(clientDir, file), 'utf8'))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(err.message))
  await page.goto(`http://127.0.0.1:${address.port}/`)
  await page.waitForFunction(() => (window as any).results?.joined === true)

  await app.rooms.broadcast('lobby', { type: 'posted', room: 'lobby', id: 'not an integer', text: 'bad' })
  await api.broadcast('lobby', 'posted', { room: 'lobby', id: 1, text: 'good' })
  await page.waitForFunction(() => (window as any).results.posted.length === 1)
  const results = await page.evaluate(() => (window as any).results)

  t.equal(results.evalRefused, true, 'the page may not eval')
  t.same(results.result, { id: 5 }, 'a typed request resolves to its result')
  t.same(results.posted, [{ type: 'posted', room: 'lobby', id: 1, text: 'good' }], 'only the valid event reached the listener')
  t.match(results.errors, [{ code: 'invalid_event', message: /"posted" failed its schema/ }])
  t.same(problems, [])
})
