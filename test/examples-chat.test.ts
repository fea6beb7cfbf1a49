// examples/chat: REST + SQLite + rooms (the hybrid pattern) with room history, names from the
// token, the server's timestamps, the page, and the static file guard.
import t, { type Test } from 'tap'
import Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { build, tokenFor, type ChatOptions } from '../examples/chat/server.js'
import WebSocket from 'ws'
import { connect as connectClient } from '../lib/client/index.js'
import { connect, refusedUpgrade, until } from './helpers.js'

interface Started { app: FastifyInstance, http: string, ws: string, port: number }

async function start (t: Test, options: ChatOptions = {}): Promise<Started> {
  const app = await build({ dbPath: ':memory:', ...options })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, http: `http://127.0.0.1:${address.port}`, ws: `ws://127.0.0.1:${address.port}/ws` }
}

/** A browser's key, as the page makes one. */
function newKey (): string {
  return randomBytes(16).toString('hex')
}

/** Connect as the page does: the token made of a name and the browser's key, as a subprotocol. */
async function connectAs (ws: string, name: string, key = newKey()): ReturnType<typeof connect> {
  return await connect(ws, { protocols: ['rooms.v1', 'bearer.' + tokenFor(name, key)] })
}

/** The push a member gets for a stored row: the author as a user object, and its place in the room's history. */
function pushOf (row: any, offset: number): Record<string, unknown> {
  const { name, ...rest } = row
  return { ...rest, type: 'chat', user: { id: row.user, name }, offset }
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
  const a = await connectAs(ws, 'ann')
  const b = await connectAs(ws, 'bea')
  const outsider = await connectAs(ws, 'out')
  t.teardown(() => Promise.all([a.close(), b.close(), outsider.close()]))
  t.equal((await a.request({ type: 'join', room: 'general' }, 1)).type, 'ack')
  t.equal((await b.request({ type: 'join', room: 'general' }, 1)).type, 'ack')

  const created = await post(http, { room: 'general', user: 'alice', text: 'hello <b>room</b>' })
  t.equal(created.status, 201)
  t.match(created.body, { id: Number, room: 'general', user: 'alice', name: 'alice', text: 'hello <b>room</b>', createdAt: String })
  t.ok(!Number.isNaN(Date.parse(created.body.createdAt)), 'createdAt is a date')

  // The room keeps history: the push carries its place in the room's stream.
  const expected = { type: 'chat', id: created.body.id, room: 'general', user: { id: 'alice', name: 'alice' }, text: 'hello <b>room</b>', createdAt: created.body.createdAt, offset: 1 }
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

t.test('the name comes from the token: authenticate makes the user { id, name }', async (t) => {
  const { ws } = await start(t)
  const key = newKey()
  const zoe = await connectAs(ws, 'Zoë 🌿', key)
  t.teardown(() => zoe.close())
  t.match(zoe.welcome.user, { id: /^u-[0-9a-f]{16}$/, name: 'Zoë 🌿' })
  t.same(Object.keys(zoe.welcome.user).sort(), ['id', 'name'])
  t.notMatch(zoe.welcome.user.id, key.slice(0, 8), 'the id others see does not give the key away')

  // The same browser under another name is the same user; another browser is another user.
  const renamed = await connectAs(ws, 'Zoe', key)
  const other = await connectAs(ws, 'Zoë 🌿')
  t.teardown(() => Promise.all([renamed.close(), other.close()]))
  t.same(renamed.welcome.user, { id: zoe.welcome.user.id, name: 'Zoe' })
  t.not(other.welcome.user.id, zoe.welcome.user.id, 'same name, other key: another user')

  // 32 characters is the longest name, whatever their size in UTF-8 (4 bytes each here).
  const longest = await connectAs(ws, '🌿'.repeat(32))
  t.teardown(() => longest.close())
  t.equal(longest.welcome.user.name, '🌿'.repeat(32))
})

t.test('a connection without a well-formed name token is refused before the upgrade', async (t) => {
  const { app, ws } = await start(t)
  t.match(await refusedUpgrade(ws), { status: 401 }, 'no token')
  const key = newKey()
  const b64 = (bytes: number[] | string): string => Buffer.from(bytes as any).toString('base64url')
  const refused: Array<[string, string]> = [
    ['no key', '.' + b64('ann')],
    ['no name', key + '.'],
    ['no dot', key],
    ['short key', key.slice(2) + '.' + b64('ann')],
    ['uppercase key', key.toUpperCase() + '.' + b64('ann')],
    ['padded base64', key + '.' + b64('an') + '='],
    ['not base64url', key + '.' + 'a+b/'],
    ['not the canonical encoding', key + '.QR'], // decodes to "A", which encodes as QQ
    ['not UTF-8', key + '.' + b64([0xff, 0xfe, 0x41])],
    ['blank name', key + '.' + b64('   ')],
    ['leading space', key + '.' + b64(' ann')],
    ['33 characters', key + '.' + b64('a'.repeat(33))],
    ['control character', key + '.' + b64('an\u0007n')],
    ['newline', key + '.' + b64('ann\nbob')],
    ['C1 control', key + '.' + b64('an\u0085n')],
    ['right-to-left override', key + '.' + b64('ann\u202Egnp.exe')],
    ['line separator', key + '.' + b64('ann\u2028')]
  ]
  // In the query string: some of these are not even allowed in a subprotocol.
  for (const [name, token] of refused) {
    t.match(await refusedUpgrade(`${ws}?token=${encodeURIComponent(token)}`), { status: 403 }, name)
  }
  t.match(await refusedUpgrade(ws, { protocols: ['rooms.v1', 'bearer.' + key + '.QR'] }), { status: 403 }, 'as a subprotocol too')
  t.equal(app.rooms.stats().connections, 0, 'none of them got a connection')
})

t.test('members, joins and pushes name the users', async (t) => {
  const { ws } = await start(t)
  const ann = await connectAs(ws, 'Ann')
  const bea = await connectAs(ws, 'Bea')
  t.teardown(() => Promise.all([ann.close(), bea.close()]))
  await ann.request({ type: 'join', room: 'lobby' }, 1)
  await bea.request({ type: 'join', room: 'lobby' }, 1)
  const joined = await ann.next((m) => m.type === 'system' && m.event === 'join' && m.user.id !== ann.welcome.user.id)
  t.same(joined.user, { id: bea.welcome.user.id, name: 'Bea' })

  const members = await ann.request({ type: 'members', room: 'lobby' }, 2)
  t.equal(members.type, 'ack')
  t.same(members.data.members.map((m: any) => m.user.name).sort(), ['Ann', 'Bea'])

  const ack = await bea.request({ type: 'post', room: 'lobby', text: 'hi Ann' }, 3)
  t.same(await ann.next({ type: 'chat' }), pushOf(ack.data, 1))
})

t.test('a REST post may name its author; its time is the server\'s', async (t) => {
  const { http, ws } = await start(t)
  const a = await connectAs(ws, 'Ann')
  t.teardown(() => a.close())
  await a.request({ type: 'join', room: 'r' }, 1)
  const sent = Date.now()
  // Fastify drops properties the schema does not list: a `createdAt` of the poster's is not used.
  const created = await post(http, { room: 'r', user: 'deploy-bot', name: 'Deploy bot', text: 'v1.2 is out', createdAt: '1999-12-31T23:59:59.000Z' })
  t.equal(created.status, 201)
  t.match(created.body, { user: 'deploy-bot', name: 'Deploy bot' })
  const stored = Date.parse(created.body.createdAt)
  t.ok(stored >= sent - 1000 && stored <= Date.now() + 1000, `createdAt ${created.body.createdAt} is the time it was stored`)
  t.same(await a.next({ type: 'chat' }), pushOf(created.body, 1))
  t.same((await history(http, 'r')).body, [created.body])
})

t.test('a chat.db from before display names is kept: its rows read with the id as the name', async (t) => {
  const dir = tempDir(t)
  const dbPath = join(dir, 'chat.db')
  const old = new Database(dbPath)
  old.exec(`
    CREATE TABLE messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      room TEXT NOT NULL,
      user TEXT NOT NULL,
      text TEXT NOT NULL,
      created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    INSERT INTO messages (room, user, text, created_at) VALUES ('r', 'anon-1', 'from before', '2024-05-01T10:00:00.000Z');
  `)
  old.close()

  const { http } = await start(t, { dbPath })
  const created = await post(http, { room: 'r', user: 'ann', name: 'Ann', text: 'after' })
  t.equal(created.status, 201)
  t.same((await history(http, 'r')).body, [
    { id: 1, room: 'r', user: 'anon-1', name: 'anon-1', text: 'from before', createdAt: '2024-05-01T10:00:00.000Z' },
    created.body
  ])
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
    ['empty name', { room: 'r', user: 'u', name: '', text: 'x' }],
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
  const a = await connectAs(ws, 'Ann')
  const b = await connectAs(ws, 'Bea')
  t.teardown(() => Promise.all([a.close(), b.close()]))
  await a.request({ type: 'join', room: 'general' }, 1)
  await b.request({ type: 'join', room: 'general' }, 1)

  // A client-sent `user`, `name` or time is ignored: the author is the connection's user, the
  // time is the server's.
  const sent = Date.now()
  const ack = await a.request({ type: 'post', room: 'general', text: 'over ws', user: 'mallory', name: 'Mallory', createdAt: '1999-12-31T23:59:59.000Z' }, 2)
  t.equal(ack.type, 'ack')
  t.match(ack.data, { id: Number, room: 'general', user: a.welcome.user.id, name: 'Ann', text: 'over ws', createdAt: String })
  // The database's clock is this machine's: the time is when it was stored (a second of slack
  // for rounding; the client's 1999 is far outside).
  const stored = Date.parse(ack.data.createdAt)
  t.ok(stored >= sent - 1000 && stored <= Date.now() + 1000, `createdAt ${ack.data.createdAt} is the time it was stored`)
  const expected = pushOf(ack.data, 1)
  t.same(expected.user, { id: a.welcome.user.id, name: 'Ann' })
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
  const token = tokenFor('Reader', newKey())
  const client = connectClient(ws, { WebSocket: Tracked, reconnect: { initialDelayMs: 5 }, token: async () => { await gate; return token } })
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
