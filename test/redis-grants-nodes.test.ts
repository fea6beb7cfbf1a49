// Grants, membership frames and refresh across three nodes over Redis: joinUser / leaveUser issued
// on one node reach the user's connections on the others as `added` / `removed`; grants and
// authorizePublish refuse on the node the client is on, and nothing refused reaches any node; a
// refresh that drops a grant is a leave everywhere, one that keeps the rooms is nothing anywhere.
import t from 'tap'
import { connect, eventually, roundTrip, startServer, type StartedServer, type TestClient } from './helpers.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import { deleteKeys, SHARED_REDIS, uniquePrefix } from './fixtures/redis-helpers.js'
import type { AuthenticatedSession } from '../types/index.js'

type Client = TestClient & { welcome: any }

const prefix = uniquePrefix('grants-nodes')
const clients: Client[] = []
const servers: StartedServer[] = []
t.teardown(async () => {
  for (const c of clients) c.ws.terminate()
  for (const s of servers) await s.app.close()
  await deleteKeys(SHARED_REDIS, prefix)
})

const SESSIONS: Record<string, AuthenticatedSession | { id: string }> = {
  eve: { id: 'eve' },
  watcher: { id: 'watcher' },
  editor: { user: { id: 'editor' }, grants: { 'news:*': ['join', 'publish'], lobby: ['join', 'publish'] } },
  reader: { user: { id: 'reader' }, grants: { 'news:*': ['join'], lobby: ['join', 'publish'], 'temp:*': ['join', 'publish'] } },
  'reader-narrow': { user: { id: 'reader' }, grants: { 'news:*': ['join'], lobby: ['join', 'publish'] } },
  'reader-same': { user: { id: 'reader' }, grants: { 'news:*': ['join'], lobby: ['join', 'publish'], 'temp:*': ['join', 'publish'] } }
}

async function node (): Promise<StartedServer> {
  const server = await startServer({
    authenticate: (token) => SESSIONS[token.split('.')[0]] ?? null,
    authorizePublish: (_user, _room, frame) => !frame.text.includes('spam'),
    rateLimit: false,
    presenceEvents: (room) => room.endsWith(':b') ? 'batched' : 'each',
    presenceInterval: 50,
    adapter: redisAdapter({ url: SHARED_REDIS, prefix })
  })
  servers.push(server)
  return server
}

const [A, B, C] = [await node(), await node(), await node()]

async function open (server: StartedServer, token: string): Promise<Client> {
  const client = await connect(`${server.url}?token=${token}`)
  clients.push(client)
  return client
}

async function joinRoom (client: Client, room: string): Promise<void> {
  const reply = await client.request({ type: 'join', room })
  if (reply.type !== 'ack') throw new Error(`join ${room}: ${JSON.stringify(reply)}`)
}

const systemAbout = (client: Client, user: string): any[] => client.received.filter((m) => m?.type === 'system' && (m.user?.id === user || [...(m.joined ?? []), ...(m.left ?? [])].some((u: any) => u.id === user)))

t.test('joinUser issued on A reaches eve on B and C as added; leaveUser issued on C as removed', async (t) => {
  const onB = await open(B, 'eve.1')
  const onC = await open(C, 'eve.2')
  const watcher = await open(A, 'watcher')
  await joinRoom(watcher, 'moved')
  await A.app.rooms.joinUser('eve', 'moved')
  t.same(await onB.next({ event: 'added' }), { type: 'system', event: 'added', room: 'moved' })
  t.same(await onC.next({ event: 'added' }), { type: 'system', event: 'added', room: 'moved' })
  await watcher.next((m) => m.event === 'join' && m.user.id === 'eve')
  await watcher.next((m) => m.event === 'join' && m.user.id === 'eve')
  await C.app.rooms.leaveUser('eve', 'moved')
  t.same(await onB.next({ event: 'removed' }), { type: 'system', event: 'removed', room: 'moved' })
  t.same(await onC.next({ event: 'removed' }), { type: 'system', event: 'removed', room: 'moved' })
  t.match(await onB.request({ type: 'message', room: 'moved', text: 'x' }, 1), { code: 'not_in_room', id: 1 })
  await eventually(async () => (await A.app.rooms.members('moved')).map((m) => m.user.id).join() === 'watcher' ? true : undefined, 'only the watcher left in the room')
})

t.test('grants across nodes: a read-only reader on B gets what the editor on C publishes; its own posts and authorizePublish refusals reach nobody', async (t) => {
  const editor = await open(C, 'editor')
  const reader = await open(B, 'reader')
  const watcher = await open(A, 'watcher')
  for (const c of [editor, reader, watcher]) await joinRoom(c, 'news:today')
  t.match(await reader.request({ type: 'message', room: 'news:today', text: 'mine' }, 'r1'), { type: 'error', code: 'forbidden', id: 'r1' })
  t.match(await editor.request({ type: 'message', room: 'news:today', text: 'spam offer' }, 'e1'), { type: 'error', code: 'forbidden', id: 'e1' }, 'authorizePublish on C')
  t.same(await editor.request({ type: 'message', room: 'news:today', text: 'headline' }, 'e2'), { type: 'ack', id: 'e2' })
  t.match(await reader.next({ type: 'chat' }), { text: 'headline', user: { id: 'editor' } })
  t.match(await watcher.next({ type: 'chat' }), { text: 'headline' })
  await roundTrip(watcher)
  await roundTrip(reader)
  t.same([...watcher.received, ...reader.received].filter((m) => m.type === 'chat').map((m) => m.text), ['headline', 'headline'], 'nothing refused reached any node')
  t.match(await reader.request({ type: 'join', room: 'sports' }, 'j'), { type: 'error', code: 'forbidden', id: 'j' })
})

for (const grantedRoom of ['temp:each', 'temp:b'] as const) {
  t.test(`a refresh on B: one that keeps the rooms is seen nowhere; one that drops a grant is a leave on every node (${grantedRoom}: ${grantedRoom.endsWith(':b') ? 'batched' : 'each'})`, async (t) => {
    const reader = await open(B, 'reader')
    const onA = await open(A, 'eve.a')
    const onC = await open(C, 'eve.c')
    for (const c of [onA, onC]) { await joinRoom(c, grantedRoom); await joinRoom(c, 'lobby') }
    await joinRoom(reader, grantedRoom)
    await joinRoom(reader, 'lobby')
    for (const c of [onA, onC]) {
      await eventually(() => systemAbout(c, 'reader').length >= 2 ? true : undefined, 'the reader\'s joins seen')
    }
    const before = [onA, onC].map((c) => systemAbout(c, 'reader').length)

    t.same(await reader.request({ type: 'refresh', token: 'reader-same' }, 1), { type: 'ack', id: 1, data: {} })
    await new Promise((resolve) => setTimeout(resolve, 200))
    for (const c of [onA, onC]) await roundTrip(c)
    t.same([onA, onC].map((c) => systemAbout(c, 'reader').length), before, 'no leave or join anywhere')

    t.same(await reader.request({ type: 'refresh', token: 'reader-narrow' }, 2), { type: 'ack', id: 2, data: {} })
    t.same(reader.received.filter((m) => m.event === 'removed'), [{ type: 'system', event: 'removed', room: grantedRoom }])
    for (const c of [onA, onC]) {
      await eventually(() => systemAbout(c, 'reader').length > before[0] ? true : undefined, 'the leave reached the other node')
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
    const after = systemAbout(onA, 'reader').slice(before[0])
    if (grantedRoom === 'temp:each') t.same(after.map((m) => [m.event, m.room]), [['leave', 'temp:each']], 'one leave, of the dropped room')
    else t.same(after.map((m) => [m.event, m.room, m.joined, m.left.map((u: any) => u.id)]), [['presence', 'temp:b', [], ['reader']]], 'one presence frame: the reader left the dropped room')
    t.same((await A.app.rooms.members('lobby')).filter((m) => m.connectionId === reader.welcome.connectionId).length, 1, 'still in lobby, across nodes')
    await eventually(async () => (await C.app.rooms.members(grantedRoom)).every((m) => m.user.id !== 'reader') ? true : undefined, 'out of the dropped room on every node')
  })
}
