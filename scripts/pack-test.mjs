// Packed-package test: `npm pack` the repo, install the tarball into a fresh project the way a
// user would, and run three consumers against it (ESM, CommonJS, TypeScript compiled with
// module nodenext). Each registers the plugin on port 0 and exchanges frames over a real `ws`
// client. Prints one PASS/FAIL line and exits non-zero on failure.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)))
const require = createRequire(join(repo, 'package.json'))
const tsc = require.resolve('typescript/bin/tsc')
const versionOf = (name) => JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

function run (cmd, args, cwd, what) {
  const result = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000, env: { ...process.env, npm_config_loglevel: 'error', npm_config_update_notifier: 'false' } })
  if (result.status !== 0) {
    throw new Error(`${what} failed (${result.error?.message ?? `exit ${result.status}`})\n${result.stdout}\n${result.stderr}`)
  }
  return result.stdout
}

// The part every consumer runs: two clients join a room, one messages the other (ack + chat),
// and a custom `echo` type (TypeBox schema) answers with ack data.
const exercise = `
async function exercise (Fastify, WebSocket, Type, plugin, label) {
  const app = Fastify({ logger: false })
  await app.register(plugin, { path: '/ws' })
  app.rooms.handle('echo', Type.Object({ text: Type.String() }), (conn, msg) => ({ echoed: msg.text, by: conn.user.id }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = 'ws://127.0.0.1:' + app.server.address().port + '/ws'
  const open = () => new Promise((resolve, reject) => {
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
  const a = await open()
  const b = await open()
  const send = (ws, frame) => ws.send(JSON.stringify(frame))
  const expect = (cond, what) => { if (!cond) throw new Error(label + ': ' + what) }
  send(a, { type: 'join', room: 'lobby', id: 1 })
  expect((await a.next((m) => m.id === 1)).type === 'ack', 'join ack for a')
  send(b, { type: 'join', room: 'lobby', id: 2 })
  expect((await b.next((m) => m.id === 2)).type === 'ack', 'join ack for b')
  send(b, { type: 'message', room: 'lobby', text: 'hello from ' + label, id: 3 })
  const ack = await b.next((m) => m.id === 3)
  expect(ack.type === 'ack', 'message ack, got ' + JSON.stringify(ack))
  const chat = await a.next((m) => m.type === 'chat')
  expect(chat.text === 'hello from ' + label && chat.room === 'lobby' && chat.user.id === b.welcome.user.id, 'chat frame, got ' + JSON.stringify(chat))
  send(a, { type: 'echo', text: 'ping', id: 4 })
  const echo = await a.next((m) => m.id === 4)
  expect(echo.type === 'ack' && echo.data.echoed === 'ping', 'echo ack data, got ' + JSON.stringify(echo))
  a.close()
  b.close()
  await app.close()
}
`

const consumers = {
  'esm.mjs': `import Fastify from 'fastify'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import wsRooms, { fastifyWsRooms, memoryAdapter } from 'fastify-ws-rooms'
${exercise}
setTimeout(() => { console.error('esm: timed out'); process.exit(1) }, 20000).unref()
if (typeof wsRooms !== 'function') throw new Error('esm: default export is not a function')
if (wsRooms !== fastifyWsRooms) throw new Error('esm: default and fastifyWsRooms differ')
if (typeof memoryAdapter !== 'function') throw new Error('esm: memoryAdapter missing')
await exercise(Fastify, WebSocket, Type, wsRooms, 'esm default')
await exercise(Fastify, WebSocket, Type, fastifyWsRooms, 'esm named')
console.log('esm ok')
`,
  'cjs.cjs': `'use strict'
const Fastify = require('fastify')
const WebSocket = require('ws')
const { Type } = require('@sinclair/typebox')
const wsRooms = require('fastify-ws-rooms')
${exercise}
setTimeout(() => { console.error('cjs: timed out'); process.exit(1) }, 20000).unref()
;(async () => {
  if (typeof wsRooms !== 'function') throw new Error('cjs: require() is not callable')
  if (typeof wsRooms.default !== 'function') throw new Error('cjs: .default is not a function')
  if (wsRooms.fastifyWsRooms !== wsRooms.default) throw new Error('cjs: .fastifyWsRooms differs from .default')
  if (typeof wsRooms.memoryAdapter !== 'function') throw new Error('cjs: .memoryAdapter missing')
  await exercise(Fastify, WebSocket, Type, wsRooms, 'cjs require')
  await exercise(Fastify, WebSocket, Type, wsRooms.default, 'cjs default')
  console.log('cjs ok')
})().catch((err) => { console.error(err); process.exit(1) })
`,
  'ts-consumer.mts': `import Fastify from 'fastify'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import wsRooms, { type ServerMessage, type WsRoomsOptions } from 'fastify-ws-rooms'

setTimeout(() => { console.error('ts: timed out'); process.exit(1) }, 20000).unref()

const options: WsRoomsOptions = {
  authenticate: (token) => (token.length > 0 ? { id: 'user-' + token } : null),
  rateLimit: { max: 50, windowMs: 1000 }
}
const app = Fastify({ logger: false })
await app.register(wsRooms, options)
app.rooms.handle('echo', Type.Object({ text: Type.String() }), (conn, msg) => ({ echoed: msg.text.toUpperCase(), by: conn.user.id }))
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no port')
const port: number = address.port

function open (token: string): Promise<{ ws: WebSocket, next: (match: (m: ServerMessage) => boolean) => Promise<ServerMessage> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket('ws://127.0.0.1:' + String(port) + '/ws', ['rooms.v1', 'bearer.' + token])
    const frames: ServerMessage[] = []
    const waiters: Array<{ match: (m: ServerMessage) => boolean, resolve: (m: ServerMessage) => void }> = []
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as ServerMessage
      const i = waiters.findIndex((w) => w.match(m))
      if (i >= 0) waiters.splice(i, 1)[0].resolve(m)
      else frames.push(m)
    })
    const next = (match: (m: ServerMessage) => boolean): Promise<ServerMessage> => {
      const i = frames.findIndex(match)
      if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0])
      return new Promise((resolve) => { waiters.push({ match, resolve }) })
    }
    ws.on('error', reject)
    ws.once('open', () => {
      if (ws.protocol !== 'rooms.v1') reject(new Error('ts: subprotocol ' + ws.protocol))
      else resolve({ ws, next })
    })
  })
}

const a = await open('ann')
const b = await open('bob')
const welcome = await a.next((m) => m.type === 'system' && m.event === 'welcome')
if (welcome.type !== 'system' || welcome.user.id !== 'user-ann') throw new Error('ts: welcome ' + JSON.stringify(welcome))
a.ws.send(JSON.stringify({ type: 'join', room: 'lobby', id: 1 }))
await a.next((m) => m.type === 'ack' && m.id === 1)
b.ws.send(JSON.stringify({ type: 'join', room: 'lobby', id: 2 }))
await b.next((m) => m.type === 'ack' && m.id === 2)
b.ws.send(JSON.stringify({ type: 'message', room: 'lobby', text: 'typed hello', id: 3 }))
await b.next((m) => m.type === 'ack' && m.id === 3)
const chat = await a.next((m) => m.type === 'chat')
if (chat.type !== 'chat' || chat.text !== 'typed hello' || chat.user.id !== 'user-bob') throw new Error('ts: chat ' + JSON.stringify(chat))
a.ws.send(JSON.stringify({ type: 'echo', text: 'quiet', id: 4 }))
const echo = await a.next((m) => m.type === 'ack' && m.id === 4)
if (echo.type !== 'ack' || JSON.stringify(echo.data) !== JSON.stringify({ echoed: 'QUIET', by: 'user-ann' })) throw new Error('ts: echo ' + JSON.stringify(echo))
const stats = app.rooms.stats()
if (stats.connections !== 2) throw new Error('ts: stats ' + JSON.stringify(stats))
a.ws.close()
b.ws.close()
await app.close()
console.log('ts ok')
`
}

const tsconfig = {
  compilerOptions: {
    target: 'ES2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck: true,
    outDir: 'out',
    types: ['node']
  },
  files: ['ts-consumer.mts']
}

const work = mkdtempSync(join(tmpdir(), 'fastify-ws-rooms-pack-'))
let failed = null
const steps = []
try {
  if (!existsSync(join(repo, 'dist/esm/index.js')) || !existsSync(join(repo, 'dist/cjs/index.cjs'))) {
    console.log('# dist/ missing: building')
    run(process.execPath, [join(repo, 'scripts/build.mjs')], repo, 'build')
  }

  const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', work], repo, 'npm pack'))
  const tarball = join(work, packed[0].filename)
  const files = packed[0].files.map((f) => f.path)
  for (const needed of ['package.json', 'dist/esm/index.js', 'dist/cjs/index.cjs', 'types/index.d.ts']) {
    if (!files.includes(needed)) throw new Error(`the tarball lacks ${needed}`)
  }
  const stray = files.filter((f) => /^(lib|test|scripts|examples|bench|\.ci)\//.test(f) || f.endsWith('.tst.ts'))
  if (stray.length > 0) throw new Error(`the tarball ships files users do not need: ${stray.join(', ')}`)
  steps.push(`packed ${packed[0].filename} (${files.length} files)`)

  const app = join(work, 'app')
  execFileSync('mkdir', ['-p', app])
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2))
  run(npm, [
    'install', '--prefer-offline', '--no-audit', '--no-fund', '--no-save',
    tarball,
    `fastify@${versionOf('fastify')}`,
    `@types/node@${versionOf('@types/node')}`,
    `@types/ws@${versionOf('@types/ws')}`
  ], app, 'npm install')
  if (existsSync(join(app, 'node_modules/ioredis'))) throw new Error('ioredis was installed: it must be an optional peer dependency')
  steps.push('installed without ioredis')

  for (const [file, source] of Object.entries(consumers)) writeFileSync(join(app, file), source)
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2))

  run(process.execPath, ['esm.mjs'], app, 'ESM consumer')
  steps.push('ESM import default + { fastifyWsRooms }')
  run(process.execPath, ['cjs.cjs'], app, 'CommonJS consumer')
  steps.push('CJS require() callable + .default')
  run(process.execPath, [tsc, '-p', 'tsconfig.json'], app, 'tsc (module nodenext) on the TypeScript consumer')
  run(process.execPath, ['out/ts-consumer.mjs'], app, 'TypeScript consumer')
  steps.push('TypeScript (nodenext) compiled and ran')
} catch (err) {
  failed = err
} finally {
  rmSync(work, { recursive: true, force: true })
}

for (const step of steps) console.log(`# ok: ${step}`)
if (failed) {
  console.error(String(failed.stack ?? failed))
  console.log('FAIL: packed-package test')
  process.exitCode = 1
} else {
  console.log('PASS: packed-package test (ESM, CommonJS, TypeScript consumers)')
}
