// `fastify.rooms` is exactly what the types document: from JavaScript, nothing else of the plugin
// is reachable through it (no delivery internals, no adapter, no EventEmitter methods). The
// documented names are read from `interface RoomsApi` in types/index.d.ts and also pinned here,
// so that a change to the public surface is a visible change to this file.
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import t from 'tap'
import ts from 'typescript'
import { serve } from './helpers.js'

const DOCUMENTED = [
  'asyncapi', 'broadcast', 'broadcastAll', 'connection', 'disconnectUser', 'drain', 'handle', 'history', 'implement', 'join', 'joinUser',
  'leave', 'leaveUser', 'members', 'nodeId', 'off', 'on', 'rooms', 'sendToUser', 'stats'
]

/** Internals that used to hang off `fastify.rooms` (the broker itself was decorated). */
const INTERNALS = ['deliverToAll', 'deliverToRoom', 'remove', 'adapter', 'emit', 'once', 'publish', 'handlers', 'connections', 'params', 'log']

/** The member names of `interface RoomsApi` in types/index.d.ts, as the TypeScript parser reads them. */
function documentedNames (): string[] {
  const file = new URL('../types/index.d.ts', import.meta.url)
  const source = ts.createSourceFile('index.d.ts', readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const api = source.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'RoomsApi')
  if (api === undefined) throw new Error('types/index.d.ts declares no interface RoomsApi')
  return [...new Set(api.members.map((m) => m.name !== undefined && ts.isIdentifier(m.name) ? m.name.text : m.getText(source)))].sort()
}

/** Every name reachable on `value` by property access: own and inherited, Object.prototype's excepted. */
function reachableNames (value: object): string[] {
  const names = new Set<string>()
  for (let o: object | null = value; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const name of Object.getOwnPropertyNames(o)) if (name !== 'constructor') names.add(name)
  }
  return [...names].sort()
}

function prototypeChain (value: object): object[] {
  const chain: object[] = []
  for (let o = Object.getPrototypeOf(value); o !== null; o = Object.getPrototypeOf(o)) chain.push(o)
  return chain
}

t.test('types/index.d.ts documents exactly the pinned names of fastify.rooms', async (t) => {
  t.strictSame(documentedNames(), DOCUMENTED)
})

t.test('fastify.rooms reaches exactly the documented names', async (t) => {
  const { app } = await serve(t)
  const names = reachableNames(app.rooms)
  t.strictSame(names.filter((name) => !DOCUMENTED.includes(name)), [], 'nothing undocumented is reachable')
  t.strictSame(DOCUMENTED.filter((name) => !names.includes(name)), [], 'every documented name is there')
  t.strictSame(Object.keys(app.rooms), [], 'no own enumerable properties')
  t.strictSame(Object.getOwnPropertySymbols(app.rooms).map(String), [], 'no own symbols')
})

t.test('fastify.rooms is no EventEmitter: one prototype, then Object.prototype', async (t) => {
  const { app } = await serve(t)
  const chain = prototypeChain(app.rooms)
  t.notOk(chain.includes(EventEmitter.prototype), 'EventEmitter.prototype is not on the chain')
  t.equal(chain.length, 2, `the chain is the facade's prototype and Object.prototype (found: ${chain.map((p) => p.constructor?.name).join(' -> ')})`)
  t.equal(chain.at(-1), Object.prototype)
})

t.test('the internals are out of reach', async (t) => {
  const { app } = await serve(t)
  const rooms = app.rooms as unknown as Record<string, unknown>
  t.strictSame(INTERNALS.filter((name) => rooms[name] !== undefined), [], 'each of these is undefined on fastify.rooms')
})

t.test('on and off return fastify.rooms itself', async (t) => {
  const { app } = await serve(t)
  const listener = (): void => {}
  t.equal(app.rooms.on('join', listener), app.rooms)
  t.equal(app.rooms.off('join', listener), app.rooms)
})

t.test('connection(id).send of what is not JSON throws the serialize TypeError and the connection still works', async (t) => {
  const s = await serve(t)
  const client = await s.open()
  const conn = s.app.rooms.connection(client.welcome.connectionId)
  if (conn === undefined) throw new Error('no connection for the welcome\'s id')
  t.throws(() => conn.send(undefined), new TypeError('fastify-ws-rooms: the message must be serializable to JSON'))
  conn.send({ type: 'after', n: 1 })
  t.strictSame(await client.next({ type: 'after' }), { type: 'after', n: 1 })
})
