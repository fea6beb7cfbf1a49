// §9 from the client's side: a client cut off while its history room goes on gets every missed
// message once, in order, and a `recovery` event counting them; a repeat is dropped; a lost
// history (a restarted in-memory server: a new epoch) is reported, and the new stream followed.
import t from 'tap'
import WebSocket from 'ws'
import { connect as connectClient } from '../lib/client/index.js'
import { CuttableWebSocket, fastReconnect, fastRestartJitterMs, listen, listenRestartable, reconnectGate, Recorder, type Server } from './client-helpers.js'
import { connect as rawConnect, join, type TestClient } from './helpers.js'
import { RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'
import { redisAdapter } from '../lib/adapters/redis.js'

function openRecovering (t: { teardown: (fn: () => unknown) => void }, url: string, gate = reconnectGate()) {
  const client = connectClient(url, {
    WebSocket: CuttableWebSocket, reconnect: fastReconnect, restartJitterMs: fastRestartJitterMs, token: gate.token, tokenTransport: 'query', presence: false
  })
  const events = new Recorder(client, ['recovery', 'message', 'news'])
  t.teardown(() => client.close())
  return { client, events, gate, socket: () => CuttableWebSocket.last! }
}

async function sender (t: { teardown: (fn: () => unknown) => void }, server: Server, room: string): Promise<TestClient> {
  const other = await rawConnect(server.url)
  t.teardown(() => other.close())
  await join(other, room)
  return other
}

async function say (from: TestClient, room: string, text: string): Promise<number> {
  const ack = await from.request({ type: 'message', room, text })
  if (ack.type !== 'ack') throw new Error(JSON.stringify(ack))
  return ack.data.offset
}

const texts = (events: Recorder, room: string): string[] => events.events('chat').map(([m]) => m).filter((m) => m.room === room).map((m) => m.text)

t.test('a cut connection: the messages sent meanwhile arrive once, in order, counted in recovery', async (t) => {
  const server = await listen({ history: {} })
  t.teardown(() => server.app.close())
  const { client, events, gate, socket } = openRecovering(t, server.url)
  await client.join('r')
  const other = await sender(t, server, 'r')

  await say(other, 'r', 'm1')
  await client.send('r', 'mine') // offset 2, known to the client from its ack only
  await say(other, 'r', 'm3')
  await events.next('chat', (m) => m.text === 'm3')

  gate.hold()
  socket().terminate()
  await events.next('close', (info) => info.code === 1006 && info.willReconnect)
  // Away: three more, one of them from the server.
  await say(other, 'r', 'm4')
  await server.app.rooms.broadcast('r', { type: 'news', room: 'r', text: 'm5' })
  await say(other, 'r', 'm6')
  gate.release()

  const [recovery] = await events.next('recovery')
  t.same(recovery, { room: 'r', recovered: true, missed: 3 }, 'recovered, three messages missed')
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, ['r'])
  await say(other, 'r', 'm7')
  await events.next('chat', (m) => m.text === 'm7')

  t.same(texts(events, 'r'), ['m1', 'm3', 'm4', 'm6', 'm7'], 'every chat message once, in order; our own not echoed')
  const offsets = events.events('message').map(([m]) => m.offset).filter((o) => o !== undefined)
  t.same(offsets, [1, 3, 4, 5, 6, 7], 'every offset once, in order (2 was ours)')
  t.same(events.events('news').map(([m]) => m.text), ['m5'], 'the broadcast too')
  const recoveryAt = events.log.findIndex((e) => e.event === 'recovery')
  const m6At = events.log.findIndex((e) => e.event === 'chat' && e.args[0].text === 'm6')
  t.ok(m6At < recoveryAt, 'the missed messages come before the recovery event')
})

t.test('offsets already seen are dropped when a recovery replays them', async (t) => {
  const server = await listen({ history: {} })
  t.teardown(() => server.app.close())
  const { client, events, gate, socket } = openRecovering(t, server.url)
  await client.join('r')
  const other = await sender(t, server, 'r')

  // Offset 1 skips this connection (except): the watermark stays at 0 while 2 and 3 are seen ahead of it.
  await server.app.rooms.broadcast('r', { type: 'news', room: 'r', text: 'not for you' }, { except: client.connectionId! })
  await say(other, 'r', 'm2')
  await say(other, 'r', 'm3')
  await events.next('chat', (m) => m.text === 'm3')

  gate.hold()
  socket().terminate()
  await events.next('close')
  await say(other, 'r', 'm4')
  gate.release()

  // The rejoin asks from offset 0: the server replays 1..4, of which 2 and 3 were seen.
  const [recovery] = await events.next('recovery')
  t.same(recovery, { room: 'r', recovered: true, missed: 2 }, 'only the two new ones count')
  await say(other, 'r', 'm5')
  await events.next('chat', (m) => m.text === 'm5')
  t.same(texts(events, 'r'), ['m2', 'm3', 'm4', 'm5'], 'm2 and m3 once each')
  const offsets = events.events('message').map(([m]) => m.offset).filter((o) => o !== undefined)
  t.same(offsets, [2, 3, 1, 4, 5], 'no offset twice; the one skipped by except arrives with the recovery (the new connection is not the excepted one)')
})

t.test('broadcasts whose payload has no room field: after a reconnect, each offset once, in order', async (t) => {
  const server = await listen({ history: {} })
  t.teardown(() => server.app.close())
  const { client, events, gate, socket } = openRecovering(t, server.url)
  await client.join('h')
  const ticks = (): number[] => events.events('message').map(([m]) => m).filter((m) => m.type === 'tick').map((m) => m.offset)

  // The application's own shape: no `room` in the payload.
  await server.app.rooms.broadcast('h', { type: 'tick', n: 1 })
  await server.app.rooms.broadcast('h', { type: 'tick', n: 2 })
  await events.next('message', (m) => m.type === 'tick' && m.n === 2)

  gate.hold()
  socket().terminate()
  await events.next('close', (info) => info.willReconnect)
  await server.app.rooms.broadcast('h', { type: 'tick', n: 3 })
  gate.release()

  const [recovery] = await events.next('recovery')
  t.same(recovery, { room: 'h', recovered: true, missed: 1 }, 'only the one sent while away was missed')
  await server.app.rooms.broadcast('h', { type: 'tick', n: 4 })
  await events.next('message', (m) => m.type === 'tick' && m.n === 4)
  t.same(ticks(), [1, 2, 3, 4], 'every offset once, in order')
})

t.test('history that no longer reaches back: recovered false, nothing replayed, the stream followed on', async (t) => {
  const server = await listen({ history: { size: 2 } })
  t.teardown(() => server.app.close())
  const { client, events, gate, socket } = openRecovering(t, server.url)
  await client.join('r')
  const other = await sender(t, server, 'r')
  await say(other, 'r', 'm1')
  await events.next('chat', (m) => m.text === 'm1')

  gate.hold()
  socket().terminate()
  await events.next('close')
  for (const text of ['m2', 'm3', 'm4']) await say(other, 'r', text) // size 2 keeps 3 and 4: 2 is gone
  gate.release()

  t.same((await events.next('recovery'))[0], { room: 'r', recovered: false, missed: 0 })
  await say(other, 'r', 'm5')
  await events.next('chat', (m) => m.text === 'm5')
  t.same(texts(events, 'r'), ['m1', 'm5'], 'nothing replayed; live again after the rejoin')
})

t.test('a restarted in-memory server (a new epoch): recovered false, and its offsets from 1 are not taken for repeats', async (t) => {
  let server = await listenRestartable({ history: {} })
  t.teardown(() => server.app.close())
  const client = connectClient(server.url, { WebSocket, reconnect: fastReconnect, restartJitterMs: fastRestartJitterMs, presence: false })
  const events = new Recorder(client, ['recovery'])
  t.teardown(() => client.close())
  await client.join('r')
  let other = await sender(t, server, 'r')
  for (const text of ['a1', 'a2', 'a3']) await say(other, 'r', text)
  await events.next('chat', (m) => m.text === 'a3')

  await server.app.close()
  server = await listen({ history: {} }, undefined, server.port)
  t.same((await events.next('recovery'))[0], { room: 'r', recovered: false, missed: 0 }, 'the old epoch is unknown to the new server')
  await events.next('open', (info) => info.reconnected)
  other = await sender(t, server, 'r')
  t.equal(await say(other, 'r', 'b1'), 1, 'the new history starts at offset 1')
  await say(other, 'r', 'b2')
  await events.next('chat', (m) => m.text === 'b2')
  t.same(texts(events, 'r'), ['a1', 'a2', 'a3', 'b1', 'b2'], 'offsets 1 and 2 of the new epoch are new messages')
})

t.test('a rejoin refused with unavailable (Redis down) is tried again, and the room is kept', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const server = await listen({ history: {}, adapter: redisAdapter({ url: redis.url, prefix: uniquePrefix('client-rejoin'), presenceTtl: 400 }) })
  t.teardown(() => server.app.close())
  const { client, events, socket } = openRecovering(t, server.url)
  await client.join('r')
  const other = await sender(t, server, 'r')
  await say(other, 'r', 'before')
  await events.next('chat', (m) => m.text === 'before')

  await redis.stop()
  socket().terminate()
  const [refused] = await events.next('error', (err) => err.room === 'r')
  t.equal(refused.code, 'unavailable', 'the rejoin was refused: the history cannot be read')
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, [], 'open without it: the connection itself is up')
  t.same([...client.rooms], ['r'], 'the room is kept, to be rejoined')

  await redis.start() // empty: the room's history is gone, so its epoch is new
  const [recovery] = await events.next('recovery', () => true, 20_000)
  t.same(recovery, { room: 'r', recovered: false, missed: 0 }, 'rejoined once Redis is back, told that the history was lost')
  t.same(events.events('error').filter(([err]) => err.room === 'r').length, 1, 'one error for the outage, not one per retry')
  const fresh = await sender(t, server, 'r')
  await say(fresh, 'r', 'after')
  await events.next('chat', (m) => m.text === 'after')
  t.same(texts(events, 'r'), ['before', 'after'])
})
