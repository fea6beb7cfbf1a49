// Packed-package test: `npm pack` the repo, install the tarball into a fresh project the way a
// user would, and check every entry point from there:
// - `fastify-ws-rooms`: ESM import and CommonJS require (callable), each exchanging frames with a
//   plugin server over a raw `ws` socket;
// - `fastify-ws-rooms/client`: ESM import and CommonJS require, each a round trip of the typed
//   client (the `ws` package as its WebSocket) against a plugin server;
// - `fastify-ws-rooms/redis`: ESM import and CommonJS require with ioredis installed, and a message
//   crossing two Fastify instances through the Redis at 127.0.0.1:6379 (PACK_TEST_REDIS_PORT to use
//   another port) under a unique prefix. When no Redis answers there, that step fails under CI=true
//   and is reported as SKIP otherwise (never as passed); PACK_TEST_REDIS=0 skips it on purpose;
// - TypeScript: an ESM (.mts) and a CommonJS (.cts) consumer compiled with the repo's tsc (module
//   nodenext, strict), using `app.rooms` and the client typed, then run; the ESM one is compiled
//   before ioredis is installed (users of the in-memory default never install it);
// - the declarations themselves, fully type-checked through the TypeScript API (the consumers
//   compile with skipLibCheck, for speed): each CommonJS .d.cts exposes the same names as its ESM
//   .d.ts, types/protocol.d.ts imports nothing, and the client's types compile without fastify or
//   ws, both in a browser project (DOM, no Node types) and in a Node project (no DOM).
// The package is packed from a clean copy of the checkout (no dist/), so the prepack script has to
// build it, as in a fresh clone (scripts/pack-fresh.mjs); the repo's own dist/ is never touched
// (other tests may be reading it). Prints a SKIP line for each step that did not run, then one
// PASS/FAIL line; exits 1 on failure.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exportedFiles, packFresh, run } from './pack-fresh.mjs'

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)))
const require = createRequire(join(repo, 'package.json'))
const tsc = require.resolve('typescript/bin/tsc')
const versionOf = (name) => JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const started = Date.now()

// ---- What the JavaScript consumers share (pasted into each, ESM or CommonJS) ----

const shared = `
function expect (cond, what) { if (!cond) throw new Error(what) }

// A raw ws socket with a frame queue: next(match) resolves with the first frame matching.
function openRaw (WebSocket, url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const frames = []
    const waiters = []
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString())
      const i = waiters.findIndex((w) => w.match(m))
      if (i >= 0) waiters.splice(i, 1)[0].resolve(m)
      else frames.push(m)
    })
    ws.next = (match) => {
      const i = frames.findIndex(match)
      if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0])
      return new Promise((resolve) => waiters.push({ match, resolve }))
    }
    ws.on('error', reject)
    ws.once('open', async () => { ws.welcome = await ws.next((m) => m.event === 'welcome'); resolve(ws) })
  })
}

// The root entry: two raw clients join a room, one messages the other (ack + chat), and a custom
// echo type (TypeBox schema) answers with ack data.
async function exercise (Fastify, WebSocket, Type, plugin, label) {
  const app = Fastify({ logger: false })
  await app.register(plugin, { path: '/ws' })
  app.rooms.handle('echo', Type.Object({ text: Type.String() }), (conn, msg) => ({ echoed: msg.text, by: conn.user.id }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = 'ws://127.0.0.1:' + app.server.address().port + '/ws'
  const a = await openRaw(WebSocket, url)
  const b = await openRaw(WebSocket, url)
  const send = (ws, frame) => ws.send(JSON.stringify(frame))
  send(a, { type: 'join', room: 'lobby', id: 1 })
  expect((await a.next((m) => m.id === 1)).type === 'ack', label + ': join ack for a')
  send(b, { type: 'join', room: 'lobby', id: 2 })
  expect((await b.next((m) => m.id === 2)).type === 'ack', label + ': join ack for b')
  send(b, { type: 'message', room: 'lobby', text: 'hello from ' + label, id: 3 })
  const ack = await b.next((m) => m.id === 3)
  expect(ack.type === 'ack', label + ': message ack, got ' + JSON.stringify(ack))
  const chat = await a.next((m) => m.type === 'chat')
  expect(chat.text === 'hello from ' + label && chat.room === 'lobby' && chat.user.id === b.welcome.user.id, label + ': chat frame, got ' + JSON.stringify(chat))
  send(a, { type: 'echo', text: 'ping', id: 4 })
  const echo = await a.next((m) => m.id === 4)
  expect(echo.type === 'ack' && echo.data.echoed === 'ping', label + ': echo ack data, got ' + JSON.stringify(echo))
  a.close()
  b.close()
  await app.close()
}

// The client subpath: two typed clients (ws as their WebSocket, tokens by subprotocol) join a
// room, chat, and make a request answered by a rooms.handle handler.
async function clientExercise (Fastify, WebSocket, Type, plugin, connect, label) {
  const app = Fastify({ logger: false })
  await app.register(plugin, { authenticate: (token) => (token.length > 0 ? { id: 'user-' + token } : null) })
  app.rooms.handle('echo', Type.Object({ text: Type.String() }), (conn, msg) => ({ echoed: msg.text, by: conn.user.id }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = 'ws://127.0.0.1:' + app.server.address().port + '/ws'
  const ann = connect(url, { WebSocket, token: 'ann', reconnect: false })
  const bob = connect(url, { WebSocket, token: async () => 'bob', reconnect: false })
  try {
    await ann.ready()
    await bob.ready()
    expect(ann.state === 'open' && ann.user.id === 'user-ann', label + ': welcome, got ' + JSON.stringify(ann.user))
    await ann.join('lobby')
    await bob.join('lobby')
    const chat = new Promise((resolve) => { ann.on('chat', resolve) })
    await bob.send('lobby', 'hello from ' + label)
    const got = await chat
    expect(got.text === 'hello from ' + label && got.room === 'lobby' && got.user.id === 'user-bob', label + ': chat, got ' + JSON.stringify(got))
    const data = await ann.request('echo', { text: 'ping' })
    expect(data.echoed === 'ping' && data.by === 'user-ann', label + ': request result, got ' + JSON.stringify(data))
  } finally {
    await ann.close()
    await bob.close()
    await app.close()
  }
}

// The redis subpath: two Fastify instances sharing one Redis (unique prefix); a message sent on
// one reaches a member on the other.
async function crossNode (Fastify, WebSocket, plugin, redisAdapter, label) {
  const prefix = process.env.PACK_TEST_PREFIX + '-' + label.replace(/[^a-z]/gi, '')
  const apps = []
  const sockets = []
  try {
    for (let i = 0; i < 2; i++) {
      const app = Fastify({ logger: false })
      apps.push(app)
      await app.register(plugin, { adapter: redisAdapter({ url: process.env.PACK_TEST_REDIS_URL, prefix }) })
      await app.listen({ port: 0, host: '127.0.0.1' })
    }
    const [a, b] = await Promise.all(apps.map((app) => openRaw(WebSocket, 'ws://127.0.0.1:' + app.server.address().port + '/ws')))
    sockets.push(a, b)
    a.send(JSON.stringify({ type: 'join', room: 'lobby', id: 1 }))
    expect((await a.next((m) => m.id === 1)).type === 'ack', label + ': join ack on node 1')
    b.send(JSON.stringify({ type: 'join', room: 'lobby', id: 2 }))
    expect((await b.next((m) => m.id === 2)).type === 'ack', label + ': join ack on node 2')
    b.send(JSON.stringify({ type: 'message', room: 'lobby', text: 'across from ' + label, id: 3 }))
    const chat = await a.next((m) => m.type === 'chat')
    expect(chat.text === 'across from ' + label && chat.user.id === b.welcome.user.id, label + ': chat across nodes, got ' + JSON.stringify(chat))
    const members = await apps[0].rooms.members('lobby')
    expect(members.length === 2, label + ': members() across nodes, got ' + JSON.stringify(members))
  } finally {
    for (const ws of sockets) ws.close()
    for (const app of apps) await app.close()
  }
}

// Constructing an adapter opens nothing; it has the RoomsAdapter methods.
function checkAdapter (adapter, label) {
  for (const m of ['init', 'publishToRoom', 'publishToUser', 'publishToAll', 'subscribeRoom', 'unsubscribeRoom', 'members', 'close']) {
    expect(typeof adapter[m] === 'function', label + ': the adapter lacks ' + m + '()')
  }
}
`

const watchdog = (label) => `setTimeout(() => { console.error('${label}: timed out'); process.exit(1) }, 30000).unref()`

const consumers = {
  'esm.mjs': `import Fastify from 'fastify'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import wsRooms, { fastifyWsRooms, memoryAdapter, RoomsError } from 'fastify-ws-rooms'
${shared}
${watchdog('esm')}
expect(typeof wsRooms === 'function', 'esm: default export is not a function')
expect(wsRooms === fastifyWsRooms, 'esm: default and fastifyWsRooms differ')
expect(typeof memoryAdapter === 'function', 'esm: memoryAdapter missing')
expect(typeof RoomsError === 'function', 'esm: RoomsError missing')
await exercise(Fastify, WebSocket, Type, wsRooms, 'esm default')
await exercise(Fastify, WebSocket, Type, fastifyWsRooms, 'esm named')
console.log('esm ok')
`,
  'cjs.cjs': `'use strict'
const Fastify = require('fastify')
const WebSocket = require('ws')
const { Type } = require('@sinclair/typebox')
const wsRooms = require('fastify-ws-rooms')
${shared}
${watchdog('cjs')}
;(async () => {
  expect(typeof wsRooms === 'function', 'cjs: require() is not callable')
  expect(typeof wsRooms.default === 'function', 'cjs: .default is not a function')
  expect(wsRooms.fastifyWsRooms === wsRooms.default, 'cjs: .fastifyWsRooms differs from .default')
  expect(typeof wsRooms.memoryAdapter === 'function', 'cjs: .memoryAdapter missing')
  expect(typeof wsRooms.RoomsError === 'function', 'cjs: .RoomsError missing')
  await exercise(Fastify, WebSocket, Type, wsRooms, 'cjs require')
  await exercise(Fastify, WebSocket, Type, wsRooms.default, 'cjs default')
  console.log('cjs ok')
})().catch((err) => { console.error(err); process.exit(1) })
`,
  'client-esm.mjs': `import Fastify from 'fastify'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import wsRooms from 'fastify-ws-rooms'
import connectDefault, { connect, RoomsClient, RoomsClientError, PROTOCOL, shouldReconnect } from 'fastify-ws-rooms/client'
${shared}
${watchdog('client-esm')}
expect(typeof connect === 'function' && connectDefault === connect, 'client-esm: connect / default export')
expect(typeof RoomsClient === 'function' && typeof RoomsClientError === 'function', 'client-esm: RoomsClient / RoomsClientError missing')
expect(PROTOCOL === 'rooms.v1' && shouldReconnect(1001) === true, 'client-esm: PROTOCOL / shouldReconnect')
await clientExercise(Fastify, WebSocket, Type, wsRooms, connect, 'client esm')
console.log('client-esm ok')
`,
  'client-cjs.cjs': `'use strict'
const Fastify = require('fastify')
const WebSocket = require('ws')
const { Type } = require('@sinclair/typebox')
const wsRooms = require('fastify-ws-rooms')
const connect = require('fastify-ws-rooms/client')
${shared}
${watchdog('client-cjs')}
;(async () => {
  expect(typeof connect === 'function', 'client-cjs: require() is not callable')
  expect(connect.connect === connect && connect.default === connect, 'client-cjs: .connect / .default')
  expect(typeof connect.RoomsClient === 'function' && typeof connect.RoomsClientError === 'function', 'client-cjs: .RoomsClient / .RoomsClientError missing')
  expect(connect.PROTOCOL === 'rooms.v1', 'client-cjs: .PROTOCOL')
  await clientExercise(Fastify, WebSocket, Type, wsRooms, connect, 'client cjs')
  console.log('client-cjs ok')
})().catch((err) => { console.error(err); process.exit(1) })
`,
  'redis-esm.mjs': `import Fastify from 'fastify'
import WebSocket from 'ws'
import wsRooms from 'fastify-ws-rooms'
import { redisAdapter } from 'fastify-ws-rooms/redis'
${shared}
${watchdog('redis-esm')}
expect(typeof redisAdapter === 'function', 'redis-esm: redisAdapter is not a function')
checkAdapter(redisAdapter({ url: 'redis://127.0.0.1:6379', prefix: 'unused' }), 'redis-esm')
if (process.env.PACK_TEST_REDIS === '1') await crossNode(Fastify, WebSocket, wsRooms, redisAdapter, 'redis esm')
console.log('redis-esm ok')
`,
  'redis-cjs.cjs': `'use strict'
const Fastify = require('fastify')
const WebSocket = require('ws')
const wsRooms = require('fastify-ws-rooms')
const redisAdapter = require('fastify-ws-rooms/redis')
${shared}
${watchdog('redis-cjs')}
;(async () => {
  expect(typeof redisAdapter === 'function', 'redis-cjs: require() is not callable')
  expect(redisAdapter.redisAdapter === redisAdapter, 'redis-cjs: .redisAdapter')
  checkAdapter(redisAdapter({ url: 'redis://127.0.0.1:6379', prefix: 'unused' }), 'redis-cjs')
  if (process.env.PACK_TEST_REDIS === '1') await crossNode(Fastify, WebSocket, wsRooms, redisAdapter, 'redis cjs')
  console.log('redis-cjs ok')
})().catch((err) => { console.error(err); process.exit(1) })
`,

  // ---- TypeScript consumers. The @ts-expect-error lines (never run) prove the types are real:
  // if anything resolved to `any`, the directive would be unused and tsc would fail. ----

  'ts-esm.mts': `import Fastify from 'fastify'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import wsRooms, { type RoomsStats, type ServerMessage, type WsRoomsOptions } from 'fastify-ws-rooms'
import { connect, type RequestFor, type RoomsClient } from 'fastify-ws-rooms/client'

setTimeout(() => { console.error('ts-esm: timed out'); process.exit(1) }, 30000).unref()

const Echo = Type.Object({ text: Type.String() })
interface EchoApp { requests: { echo: RequestFor<typeof Echo, { echoed: string, by: string }> } }

const options: WsRoomsOptions = {
  authenticate: (token) => (token.length > 0 ? { id: 'user-' + token } : null),
  rateLimit: { max: 50, windowMs: 1000 }
}
const app = Fastify({ logger: false })
await app.register(wsRooms, options)
app.rooms.handle('echo', Echo, (conn, msg) => ({ echoed: msg.text.toUpperCase(), by: conn.user.id }))
const joined: string[] = []
app.rooms.on('join', (_conn, room) => { joined.push(room) })
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('ts-esm: no port')
const url = 'ws://127.0.0.1:' + String(address.port) + '/ws'

// A raw socket, frames typed as ServerMessage.
const raw = new WebSocket(url, ['rooms.v1', 'bearer.raw'])
const welcome = await new Promise<ServerMessage>((resolve, reject) => {
  raw.once('message', (data) => { resolve(JSON.parse(data.toString()) as ServerMessage) })
  raw.once('error', reject)
})
if (welcome.type !== 'system' || welcome.event !== 'welcome' || welcome.user.id !== 'user-raw') throw new Error('ts-esm: welcome ' + JSON.stringify(welcome))
if (raw.protocol !== 'rooms.v1') throw new Error('ts-esm: subprotocol ' + raw.protocol)
raw.close()

// The typed client.
const ann: RoomsClient<EchoApp> = connect<EchoApp>(url, { WebSocket, token: 'ann', reconnect: false })
const bob = connect<EchoApp>(url, { WebSocket, token: 'bob', reconnect: false })
await ann.ready()
await bob.ready()
await ann.join('lobby')
await bob.join('lobby')
const chat = new Promise<string>((resolve) => { ann.on('chat', (event) => { resolve(event.user.id + ': ' + event.text) }) })
await bob.send('lobby', 'typed hello')
if (await chat !== 'user-bob: typed hello') throw new Error('ts-esm: chat')
const echoed: { echoed: string, by: string } = await ann.request('echo', { text: 'quiet' })
if (echoed.echoed !== 'QUIET' || echoed.by !== 'user-ann') throw new Error('ts-esm: echo ' + JSON.stringify(echoed))
const stats: RoomsStats = app.rooms.stats()
if (stats.connections !== 2 || joined.length !== 2) throw new Error('ts-esm: stats ' + JSON.stringify(stats) + ' joins ' + joined.join())
await ann.close()
await bob.close()
await app.close()
console.log('ts-esm ok')

export function typeErrors (): void {
  // @ts-expect-error an unknown option
  void app.register(wsRooms, { port: 3000 })
  // @ts-expect-error not on RoomsApi
  app.rooms.nope()
  // @ts-expect-error not in the schema
  app.rooms.handle('echo', Echo, (_conn, msg) => msg.nope)
  // @ts-expect-error the payload does not match the schema
  void ann.request('echo', { text: 1 })
}
`,
  'ts-cjs.cts': `import Fastify = require('fastify')
import WebSocket = require('ws')
import { Type } from '@sinclair/typebox'
import wsRooms = require('fastify-ws-rooms')
import redisAdapter = require('fastify-ws-rooms/redis')
import connect = require('fastify-ws-rooms/client')

const Echo = Type.Object({ text: Type.String() })
interface EchoApp { requests: { echo: connect.RequestFor<typeof Echo, { echoed: string, by: string }> } }

async function main (): Promise<void> {
  const options: wsRooms.WsRoomsOptions = {
    authenticate: (token) => (token.length > 0 ? { id: 'user-' + token } : null)
  }
  const adapter: wsRooms.RoomsAdapter = redisAdapter({ url: process.env.PACK_TEST_REDIS_URL, prefix: process.env.PACK_TEST_PREFIX + '-ts' })
  if (process.env.PACK_TEST_REDIS === '1') options.adapter = adapter
  const app = Fastify({ logger: false })
  await app.register(wsRooms, options)
  app.rooms.handle('echo', Echo, (conn, msg) => ({ echoed: msg.text.toUpperCase(), by: conn.user.id }))
  const joined: string[] = []
  app.rooms.on('join', (_conn, room) => { joined.push(room) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('ts-cjs: no port')
  const url = 'ws://127.0.0.1:' + String(address.port) + '/ws'

  const ann: connect.RoomsClient<EchoApp> = connect<EchoApp>(url, { WebSocket, token: 'ann', reconnect: false })
  const bob = connect.connect<EchoApp>(url, { WebSocket, token: () => 'bob', reconnect: false })
  try {
    await ann.ready()
    await bob.ready()
    await ann.join('lobby')
    await bob.join('lobby')
    const chat = new Promise<connect.ChatEvent>((resolve) => { ann.on('chat', resolve) })
    await bob.send('lobby', 'typed hello')
    const event = await chat
    if (event.text !== 'typed hello' || event.user.id !== 'user-bob') throw new Error('ts-cjs: chat ' + JSON.stringify(event))
    const echoed: { echoed: string, by: string } = await ann.request('echo', { text: 'quiet' })
    if (echoed.echoed !== 'QUIET' || echoed.by !== 'user-ann') throw new Error('ts-cjs: echo ' + JSON.stringify(echoed))
    const members: wsRooms.RoomMember[] = await app.rooms.members('lobby')
    const stats: wsRooms.RoomsStats = app.rooms.stats()
    if (members.length !== 2 || stats.connections !== 2 || joined.length !== 2) throw new Error('ts-cjs: members ' + JSON.stringify(members) + ' stats ' + JSON.stringify(stats))
  } finally {
    await ann.close()
    await bob.close()
    await app.close()
  }
}

export function typeErrors (app: Fastify.FastifyInstance, client: connect.RoomsClient<EchoApp>): void {
  // @ts-expect-error an unknown option
  void app.register(wsRooms, { port: 3000 })
  // @ts-expect-error not on RoomsApi
  app.rooms.nope()
  // @ts-expect-error not in the schema
  app.rooms.handle('echo', Echo, (_conn, msg) => msg.nope)
  // @ts-expect-error not a redisAdapter option
  redisAdapter({ urll: 'redis://127.0.0.1:6379' })
  // @ts-expect-error the payload does not match the schema
  void client.request('echo', { text: 1 })
}

setTimeout(() => { console.error('ts-cjs: timed out'); process.exit(1) }, 30000).unref()
main().then(() => { console.log('ts-cjs ok') }, (err: unknown) => { console.error(err); process.exit(1) })
`
}

const tsconfigFor = (file) => ({
  compilerOptions: {
    target: 'ES2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck: true,
    outDir: 'out',
    types: ['node']
  },
  files: [file]
})

// ---- Checks of the installed declarations, through the TypeScript API ----

function checkDeclarations (pkgDir) {
  const ts = require('typescript')
  const types = join(pkgDir, 'types')
  const base = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, noEmit: true }
  // Diagnostics of the package's own declaration files (and the program's global ones), fully
  // checked; the rest of node_modules is only read.
  const diagnosticsOf = (program) => [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSourceFiles().filter((f) => f.fileName.startsWith(types)).flatMap((f) => [
      ...program.getSyntacticDiagnostics(f),
      ...program.getSemanticDiagnostics(f)
    ])
  ].map((d) =>
    `${d.file ? d.file.fileName.slice(pkgDir.length + 1) + ': ' : ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
  const ours = (program) => program.getSourceFiles().map((f) => f.fileName).filter((f) => !f.includes('/typescript/lib/'))

  // Every subpath: the CommonJS declarations expose exactly the names of the ESM ones, and all of
  // them type-check (the consumers compile with skipLibCheck; this checks our files, fully).
  const pairs = ['index', 'redis', 'client']
  const roots = pairs.flatMap((name) => [join(types, `${name}.d.ts`), join(types, `${name}.d.cts`)])
  const program = ts.createProgram(roots, { ...base, types: ['node'] })
  const problems = diagnosticsOf(program)
  if (problems.length > 0) throw new Error('the declarations do not compile:\n' + problems.join('\n'))
  const checker = program.getTypeChecker()
  const namesOf = (file) => checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file))).map((s) => s.name).sort()
  for (const name of pairs) {
    const esm = namesOf(join(types, `${name}.d.ts`))
    const cjs = namesOf(join(types, `${name}.d.cts`))
    const missing = esm.filter((n) => !cjs.includes(n))
    const extra = cjs.filter((n) => !esm.includes(n))
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(`types/${name}.d.cts and types/${name}.d.ts differ: missing in .d.cts [${missing.join(', ')}], only in .d.cts [${extra.join(', ')}]`)
    }
  }

  // The wire protocol stands alone; the client's types need neither fastify nor ws, and compile in
  // a browser project (DOM, no Node types) and in a Node project (Node types, no DOM).
  const protocol = ts.createProgram([join(types, 'protocol.d.ts')], { ...base, lib: ['lib.es2022.d.ts'], types: [] })
  const protocolFiles = ours(protocol)
  const list = (files) => files.slice(0, 5).map((f) => f.slice(f.lastIndexOf('node_modules/') + 13)).join(', ') + (files.length > 5 ? ` and ${files.length - 5} more` : '')
  if (protocolFiles.length !== 1) throw new Error('types/protocol.d.ts imports other files: ' + list(protocolFiles.filter((f) => !f.endsWith('/types/protocol.d.ts'))))
  let clientFiles = 0
  for (const [setting, options] of [['a browser project (DOM, no Node types)', { lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: [] }], ['a Node project (no DOM)', { lib: ['lib.es2022.d.ts'], types: ['node'] }]]) {
    const client = ts.createProgram([join(types, 'client.d.ts'), join(types, 'client.d.cts')], { ...base, ...options })
    const clientProblems = diagnosticsOf(client)
    if (clientProblems.length > 0) throw new Error(`the client declarations do not compile in ${setting}:\n` + clientProblems.join('\n'))
    const server = ours(client).filter((f) => /\/node_modules\/(fastify|@fastify|ws|@types\/ws|ioredis)\//.test(f) || f.endsWith('/types/index.d.ts'))
    if (server.length > 0) throw new Error('the client declarations pull in server-side types: ' + list(server))
    clientFiles = ours(client).filter((f) => f.includes('/fastify-ws-rooms/')).length
  }
  return `declarations: each .d.cts exposes the names of its .d.ts (${pairs.join(', ')}); protocol.d.ts imports nothing; the client's ${clientFiles} declaration files compile for a browser and for Node without fastify or ws`
}

// ---- Helpers ----

/** Does a Redis answer PING on 127.0.0.1:`port` within a second? */
function redisAnswers (port) {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port })
    const done = (ok) => { clearTimeout(timer); socket.destroy(); resolve(ok) }
    const timer = setTimeout(() => done(false), 1000)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
    socket.once('error', () => done(false))
  })
}

// ---- The run ----

const targets = exportedFiles(repo)
const work = mkdtempSync(join(tmpdir(), 'fastify-ws-rooms-pack-'))
const prefix = 'pack-test-' + randomBytes(6).toString('hex')
const redisPort = Number(process.env.PACK_TEST_REDIS_PORT ?? 6379)
const redisUrl = `redis://127.0.0.1:${redisPort}`
const inCi = process.env.CI === 'true' || process.env.CI === '1'
let failed = null
const steps = []
/** Steps that did not run, and why: reported as SKIP, never as passed. */
const skipped = []
try {
  // 1-2. Packed from a clean copy: prepack builds dist/. The tarball: every export target and every
  // file a declaration imports is in; nothing else.
  const packed = packFresh(repo, work)
  steps.push(`packed from a clean copy of the checkout, no dist/: ${packed.built}`)
  const { tarball, files } = packed
  const needed = new Set(['package.json', ...targets])
  for (const file of files.filter((f) => /^types\/.*\.d\.c?ts$/.test(f))) {
    const text = readFileSync(join(packed.stage, file), 'utf8')
    for (const [, spec] of text.matchAll(/from '\.\/([^']+)\.js'/g)) needed.add(`types/${spec}.d.ts`)
  }
  const lacking = [...needed].filter((f) => !files.includes(f))
  if (lacking.length > 0) throw new Error(`the tarball lacks ${lacking.join(', ')}`)
  const stray = files.filter((f) => /^(lib|test|scripts|examples|bench|\.ci)\//.test(f) || f.includes('.tst.'))
  if (stray.length > 0) throw new Error(`the tarball ships files users do not need: ${stray.join(', ')}`)
  steps.push(`packed ${packed.filename} (${files.length} files, all ${needed.size} export targets and declaration imports present)`)

  // 3. A user's project, without ioredis first.
  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2))
  const install = (specs, what) => run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', ...specs], app, what)
  install([tarball, `fastify@${versionOf('fastify')}`, `@types/node@${versionOf('@types/node')}`, `@types/ws@${versionOf('@types/ws')}`], 'npm install')
  if (existsSync(join(app, 'node_modules/ioredis'))) throw new Error('ioredis was installed: it must be an optional peer dependency')
  steps.push('installed without ioredis')

  for (const [file, source] of Object.entries(consumers)) writeFileSync(join(app, file), source)
  writeFileSync(join(app, 'tsconfig.esm.json'), JSON.stringify(tsconfigFor('ts-esm.mts'), null, 2))
  writeFileSync(join(app, 'tsconfig.cjs.json'), JSON.stringify(tsconfigFor('ts-cjs.cts'), null, 2))
  const env = { PACK_TEST_PREFIX: prefix }

  run(process.execPath, ['esm.mjs'], app, 'ESM consumer', env)
  steps.push('ESM: import default + { fastifyWsRooms, memoryAdapter, RoomsError }, frames over ws')
  run(process.execPath, ['cjs.cjs'], app, 'CommonJS consumer', env)
  steps.push('CJS: require() callable + .default, frames over ws')
  run(process.execPath, ['client-esm.mjs'], app, 'client ESM consumer', env)
  steps.push('client ESM: import { connect } + default, round trip with ws as WebSocket')
  run(process.execPath, ['client-cjs.cjs'], app, 'client CommonJS consumer', env)
  steps.push('client CJS: require() callable + .connect/.default, round trip with ws as WebSocket')
  run(process.execPath, [tsc, '-p', 'tsconfig.esm.json'], app, 'tsc (module nodenext) on the ESM TypeScript consumer, without ioredis')
  run(process.execPath, ['out/ts-esm.mjs'], app, 'ESM TypeScript consumer', env)
  steps.push('TypeScript ESM (.mts, nodenext, no ioredis): compiled, app.rooms and the client typed, ran')

  // 4. With ioredis: the redis subpath, the CommonJS TypeScript consumer, the declarations.
  install([`ioredis@${versionOf('ioredis')}`], 'npm install ioredis')
  const optedOut = process.env.PACK_TEST_REDIS === '0'
  const withRedis = !optedOut && await redisAnswers(redisPort)
  if (!withRedis && !optedOut && inCi) {
    throw new Error(`no Redis answered PING on 127.0.0.1:${redisPort}: under CI=true the Redis step must run (start redis-server, or set PACK_TEST_REDIS=0 to skip it on purpose)`)
  }
  const redisEnv = { ...env, PACK_TEST_REDIS: withRedis ? '1' : '0', PACK_TEST_REDIS_URL: redisUrl }
  run(process.execPath, ['redis-esm.mjs'], app, 'redis ESM consumer', redisEnv)
  run(process.execPath, ['redis-cjs.cjs'], app, 'redis CommonJS consumer', redisEnv)
  if (withRedis) {
    steps.push(`redis ESM + CJS (callable require): a message crossed two Fastify instances through ${redisUrl}`)
  } else {
    steps.push('redis ESM + CJS (callable require): adapters constructed')
    skipped.push(`Redis step: no message crossed two nodes (${optedOut ? 'PACK_TEST_REDIS=0' : `no Redis answered PING on 127.0.0.1:${redisPort}; under CI=true this fails`})`)
  }
  run(process.execPath, [tsc, '-p', 'tsconfig.cjs.json'], app, 'tsc (module nodenext) on the CommonJS TypeScript consumer')
  run(process.execPath, ['out/ts-cjs.cjs'], app, 'CommonJS TypeScript consumer', redisEnv)
  steps.push(`TypeScript CJS (.cts, nodenext, import = require): compiled, app.rooms and the client typed, ran${withRedis ? ' on the Redis adapter' : ''}`)
  steps.push(checkDeclarations(join(app, 'node_modules/fastify-ws-rooms')))
} catch (err) {
  failed = err
} finally {
  rmSync(work, { recursive: true, force: true })
}

for (const step of steps) console.log(`# ok: ${step}`)
for (const step of skipped) console.log(`SKIP: ${step}`)
const seconds = ((Date.now() - started) / 1000).toFixed(1)
if (failed) {
  console.error(String(failed.stack ?? failed))
  console.log(`FAIL: packed-package test (${seconds} s)`)
  process.exitCode = 1
} else if (skipped.length > 0) {
  // Not a PASS line: what was skipped was not tested.
  console.log(`SKIPPED ${skipped.length} step(s) (see SKIP above), the others passed: packed-package test (root, /client, /redis without the cross-node exchange; ESM, CommonJS, TypeScript .mts and .cts) in ${seconds} s`)
} else {
  console.log(`PASS: packed-package test (root, /client, /redis across two nodes; ESM, CommonJS, TypeScript .mts and .cts) in ${seconds} s`)
}
