// examples/chat: REST + SQLite + rooms (the hybrid pattern) with room history, the page, and the
// static file guard.
import t, { type Test } from 'tap'
import { request as httpRequest } from 'node:http'
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { build, type ChatOptions } from '../examples/chat/server.js'
import WebSocket from 'ws'
import { connect as connectClient } from '../lib/client/index.js'
import { connect, until } from './helpers.js'

interface Started { app: FastifyInstance, http: string, ws: string, port: number }

async function start (t: Test, options: ChatOptions = {}): Promise<Started> {
  const app = await build({ dbPath: ':memory:', ...options })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, http: `http://127.0.0.1:${address.port}`, ws: `ws://127.0.0.1:${address.port}/ws` }
}

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ws-rooms-chat-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function post (http: string, body: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(http + '/api/messages', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() }
}

async function history (http: string, room: string, query = ''): Promise<{ status: number, body: any }> {
  const res = await fetch(`${http}/api/rooms/${encodeURIComponent(room)}/messages${query}`)
  return { status: res.status, body: await res.json() }
}

/** GET a path exactly as written: fetch() would normalise `..` and `%2e%2e` away before sending. */
function rawGet (port: number, path: string): Promise<{ status: number, type: string | undefined, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('two members get a REST-posted message, and it is in the history', async (t) => {
  const { http, ws } = await start(t)
  const a = await connect(ws)
  const b = await connect(ws)
  const outsider = await connect(ws)
  t.teardown(() => Promise.all([a.close(), b.close(), outsider.close()]))
  t.equal((await a.request({ type: 'join', room: 'general' }, 1)).type, 'ack')
  t.equal((await b.request({ type: 'join', room: 'general' }, 1)).type, 'ack')

  const created = await post(http, { room: 'general', user: 'alice', text: 'hello <b>room</b>' })
  t.equal(created.status, 201)
  t.match(created.body, { id: Number, room: 'general', user: 'alice', text: 'hello <b>room</b>', createdAt: String })
  t.ok(!Number.isNaN(Date.parse(created.body.createdAt)), 'createdAt is a date')

  // The room keeps history: the push carries its place in the room's stream.
  const expected = { ...created.body, type: 'chat', user: { id: 'alice' }, offset: 1 }
  t.same(await a.next({ type: 'chat' }), expected)
  t.same(await b.next({ type: 'chat' }), expected)

  const got = await history(http, 'general')
  t.equal(got.status, 200)
  t.same(got.body, [created.body])
  t.same(await history(http, 'elsewhere'), { status: 200, body: [] })

  // The outsider, in no room, got nothing: a round-trip after the broadcast proves it.
  await outsider.request({ type: 'join', room: 'other' }, 'x')
  t.same(outsider.received.filter((m) => m.type === 'chat'), [])
})

t.test('history is bounded to the newest N, oldest first, and pages back with ?before=', async (t) => {
  const { http } = await start(t)
  const ids: number[] = []
  for (let i = 1; i <= 5; i++) {
    const res = await post(http, { room: 'r', user: 'u', text: `m${i}` })
    ids.push(res.body.id)
  }
  await post(http, { room: 'another', user: 'u', text: 'not this one' })

  const newest = await history(http, 'r', '?limit=3')
  t.same(newest.body.map((m: any) => m.text), ['m3', 'm4', 'm5'])
  const older = await history(http, 'r', `?limit=3&before=${newest.body[0].id}`)
  t.same(older.body.map((m: any) => m.text), ['m1', 'm2'])
  t.same((await history(http, 'r')).body.length, 5, 'default limit covers these five')

  t.equal((await history(http, 'r', '?limit=0')).status, 400)
  t.equal((await history(http, 'r', '?limit=201')).status, 400)
  t.equal((await history(http, 'r', '?before=abc')).status, 400)
})

t.test('room names with spaces and non-ASCII round-trip through the URL', async (t) => {
  const { http } = await start(t)
  const room = 'café ☕ / lobby'
  const created = await post(http, { room, user: 'zoë', text: 'hi' })
  t.equal(created.status, 201)
  t.same((await history(http, room)).body, [created.body])
})

t.test('bad bodies get 400 and store nothing', async (t) => {
  const { http } = await start(t)
  const cases: Array<[string, unknown]> = [
    ['missing text', { room: 'r', user: 'u' }],
    ['empty text', { room: 'r', user: 'u', text: '' }],
    ['text too long', { room: 'r', user: 'u', text: 'x'.repeat(2001) }],
    ['room not a string', { room: { name: 'r' }, user: 'u', text: 'x' }],
    ['empty room', { room: '', user: 'u', text: 'x' }],
    ['control character in room', { room: 'a\u0007b', user: 'u', text: 'x' }],
    ['C1 control character in room', { room: 'a\u0085b', user: 'u', text: 'x' }],
    // 65 emoji: 65 code points (JSON Schema's count) but 130 UTF-16 code units (the plugin's).
    ['room over 128 UTF-16 code units', { room: '😀'.repeat(65), user: 'u', text: 'x' }],
    ['empty user', { room: 'r', user: '', text: 'x' }],
    ['not an object', ['r', 'u', 'x']]
  ]
  for (const [name, body] of cases) {
    const res = await post(http, body)
    t.equal(res.status, 400, name)
    t.match(res.body, { statusCode: 400, error: 'Bad Request', message: String }, name)
  }
  const notJson = await fetch(http + '/api/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })
  t.equal(notJson.status, 400, 'malformed JSON')
  t.same((await history(http, 'r')).body, [])
  // 64 emoji is exactly 128 code units: allowed.
  t.equal((await post(http, { room: '😀'.repeat(64), user: 'u', text: 'x' })).status, 201)
})

t.test('a `post` frame over the socket is stored and pushed like a REST post', async (t) => {
  const { http, ws } = await start(t)
  const a = await connect(ws)
  const b = await connect(ws)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  await a.request({ type: 'join', room: 'general' }, 1)
  await b.request({ type: 'join', room: 'general' }, 1)

  // A client-sent `user` is ignored: the author is the connection's user.
  const ack = await a.request({ type: 'post', room: 'general', text: 'over ws', user: 'mallory' }, 2)
  t.equal(ack.type, 'ack')
  t.match(ack.data, { id: Number, room: 'general', user: a.welcome.user.id, text: 'over ws' })
  const expected = { ...ack.data, type: 'chat', user: { id: a.welcome.user.id }, offset: 1 }
  t.same(await a.next({ type: 'chat' }), expected)
  t.same(await b.next({ type: 'chat' }), expected)
  t.same((await history(http, 'general')).body, [ack.data])

  const notJoined = await a.request({ type: 'post', room: 'elsewhere', text: 'x' }, 3)
  t.match(notJoined, { type: 'error', id: 3, code: 'not_in_room' })
  const invalid = await a.request({ type: 'post', room: 'general' }, 4)
  t.match(invalid, { type: 'error', code: 'invalid_message', id: 4 })
  t.same((await history(http, 'elsewhere')).body, [])
  t.equal((await history(http, 'general')).body.length, 1)
})

t.test('the page is served at / and the built client at /client/', async (t) => {
  const clientDir = tempDir(t)
  writeFileSync(join(clientDir, 'index.js'), 'export const connect = () => {}\n')
  mkdirSync(join(clientDir, 'nested'))
  writeFileSync(join(clientDir, 'nested', 'util.js'), 'export {}\n')
  writeFileSync(join(clientDir, 'index.js.map'), '{}')
  const { http } = await start(t, { clientDir })

  const page = await fetch(http + '/')
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html; charset=utf-8/)
  t.equal(page.headers.get('x-content-type-options'), 'nosniff')
  t.match(await page.text(), /<html/i)
  const byName = await fetch(http + '/index.html')
  t.equal(byName.status, 200)
  t.match(byName.headers.get('content-type'), /^text\/html/)

  const client = await fetch(http + '/client/index.js')
  t.equal(client.status, 200)
  t.match(client.headers.get('content-type'), /^text\/javascript/)
  t.equal(await client.text(), 'export const connect = () => {}\n')
  t.equal((await fetch(http + '/client/nested/util.js')).status, 200)
  t.match((await fetch(http + '/client/index.js.map')).headers.get('content-type'), /^application\/json/)

  t.equal((await fetch(http + '/client/missing.js')).status, 404)
  t.equal((await fetch(http + '/client/nested')).status, 404, 'a directory is not a file')
  t.equal((await fetch(http + '/nope.html')).status, 404)
  t.equal((await fetch(http + '/api/nope')).status, 404)
})

t.test('path traversal and hidden files are refused', async (t) => {
  const clientDir = tempDir(t)
  writeFileSync(join(clientDir, 'index.js'), '')
  writeFileSync(join(clientDir, '.secret'), 'TOP-SECRET-CONTENT')
  const { port } = await start(t, { clientDir })
  const attempts = [
    '/../server.ts',
    '/..%2fserver.ts',
    '/%2e%2e/server.ts',
    '/%2e%2e%2fdb.ts',
    '/..%5cserver.ts',
    '/client/../../package.json',
    '/client/..%2f..%2f..%2fpackage.json',
    '/client/%2e%2e/%2e%2e/%2e%2e/package.json',
    '/client/%2fetc%2fpasswd',
    '/%2fetc%2fpasswd',
    '/client/.secret',
    '/client/index.js%00.html',
    '/%00'
  ]
  for (const path of attempts) {
    const res = await rawGet(port, path)
    t.equal(res.status, 404, path)
    t.notMatch(res.body, /openChatStore|"name": "fastify-ws-rooms"|root:|TOP-SECRET-CONTENT/, path)
  }
})

t.test('messages survive a restart, and the database is closed on close', async (t) => {
  const dir = tempDir(t)
  const dbPath = join(dir, 'chat.db')

  const first = await build({ dbPath })
  await first.listen({ port: 0, host: '127.0.0.1' })
  const address = first.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const created = await post(`http://127.0.0.1:${address.port}`, { room: 'r', user: 'u', text: 'kept' })
  t.equal(created.status, 201)
  t.ok(existsSync(dbPath + '-wal'), 'the database is open in WAL mode')
  await first.close()
  // SQLite removes the WAL file when the last connection closes cleanly.
  t.notOk(existsSync(dbPath + '-wal'), 'the database was closed by onClose')

  const { http } = await start(t, { dbPath })
  t.same((await history(http, 'r')).body, [created.body])
})

t.test('CHAT_DB picks the file when no dbPath is given', async (t) => {
  const dir = tempDir(t)
  const saved = process.env.CHAT_DB
  process.env.CHAT_DB = join(dir, 'from-env.db')
  t.teardown(() => {
    if (saved === undefined) delete process.env.CHAT_DB
    else process.env.CHAT_DB = saved
  })
  const app = await build()
  t.teardown(() => app.close())
  await app.ready()
  t.ok(existsSync(join(dir, 'from-env.db')))
})

t.test('with the fastify-ws-rooms client: a cut connection recovers the posts made meanwhile, once each', async (t) => {
  const { http, ws } = await start(t)
  let socket: WebSocket | undefined
  class Tracked extends WebSocket {
    constructor (url: string, protocols?: string | string[]) { super(url, protocols); socket = this }
  }
  // The token function holds the reconnect until the posts below are made.
  let gate: Promise<void> = Promise.resolve()
  let release = (): void => {}
  const client = connectClient(ws, { WebSocket: Tracked, reconnect: { initialDelayMs: 5 }, token: async () => { await gate; return 'unused' } })
  t.teardown(() => client.close())
  const pushed: any[] = []
  const recoveries: any[] = []
  client.on('chat', (m) => pushed.push(m))
  client.on('recovery', (info) => recoveries.push(info))
  await client.join('general')
  await post(http, { room: 'general', user: 'alice', text: 'one' })
  await until(() => pushed.length === 1)

  gate = new Promise((resolve) => { release = resolve })
  socket!.terminate()
  await post(http, { room: 'general', user: 'bob', text: 'two' })
  await post(http, { room: 'general', user: 'bob', text: 'three' })
  release()
  await until(() => recoveries.length === 1)
  t.same(recoveries, [{ room: 'general', recovered: true, missed: 2 }])
  await post(http, { room: 'general', user: 'alice', text: 'four' })
  await until(() => pushed.length === 4)
  t.same(pushed.map((m) => [m.offset, m.text]), [[1, 'one'], [2, 'two'], [3, 'three'], [4, 'four']])
  t.same((await history(http, 'general')).body.map((m: any) => m.text), ['one', 'two', 'three', 'four'], 'and REST has them all')
})
