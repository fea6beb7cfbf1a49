// examples/cluster: the chat example on two nodes (separate processes) sharing Redis and one SQLite
// file. A message POSTed to one node reaches members on both, and either node serves the history.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { startCluster } from '../examples/cluster/start.js'
import { tokenFor } from '../examples/chat/server.js'
import { connect, type TestClient } from './helpers.js'
import { deleteKeys, get, post, SHARED_REDIS, stopOrKillChildren, uniquePrefix } from './fixtures/redis-helpers.js'

const prefix = uniquePrefix('example')
const dir = mkdtempSync(join(tmpdir(), 'ws-rooms-cluster-'))
const cluster = await startCluster({
  ports: [0, 0],
  env: { HOST: '127.0.0.1', REDIS_URL: SHARED_REDIS, ROOMS_PREFIX: prefix, CHAT_DB: join(dir, 'chat.db'), LOG_LEVEL: 'silent' },
  stdio: 'ignore'
})
const clients: TestClient[] = []
t.teardown(async () => {
  for (const c of clients) c.ws.terminate()
  // cluster.stop() sends SIGTERM and waits; a node stuck in its shutdown is killed after 5 s.
  const killed = await stopOrKillChildren(cluster.stop(), 'examples/cluster/node.ts')
  if (killed.length > 0) t.fail(`cluster nodes ${killed.join(', ')} did not exit within 5 s of SIGTERM and were killed`)
  await deleteKeys(SHARED_REDIS, prefix)
  rmSync(dir, { recursive: true, force: true })
})

t.test('two nodes, one chat', async (t) => {
  const [one, two] = cluster.urls
  t.not((await get(one, '/api/node')).nodeId, (await get(two, '/api/node')).nodeId, 'two distinct nodes')
  const page = await fetch(two + '/')
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /text\/html/, 'each node serves the chat page')
  await page.arrayBuffer()

  // The chat example takes a name in the token, as its page sends it.
  const as = (name: string): { protocols: string[] } => ({ protocols: ['rooms.v1', 'bearer.' + tokenFor(name, randomBytes(16).toString('hex'))] })
  const ada = await connect(one.replace('http', 'ws') + '/ws', as('Ada'))
  const bob = await connect(two.replace('http', 'ws') + '/ws', as('Bob'))
  clients.push(ada, bob)
  for (const client of [ada, bob]) t.equal((await client.request({ type: 'join', room: 'lobby' })).type, 'ack')
  await ada.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === bob.welcome.user.id)

  const saved = await post(one, '/api/messages', { room: 'lobby', user: 'ada', text: 'hello from node one' })
  for (const client of [ada, bob]) {
    const chat = await client.next({ type: 'chat' })
    t.same({ id: chat.id, text: chat.text, user: chat.user }, { id: saved.id, text: 'hello from node one', user: { id: 'ada', name: 'ada' } })
  }
  const history = await get(two, '/api/rooms/lobby/messages')
  t.same(history.map((m: any) => m.text), ['hello from node one'], 'the other node serves the same history')
})
