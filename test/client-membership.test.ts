// Rooms the server moves a connection into or out of: `fastify.rooms.join` / `leave` and
// `joinUser` / `leaveUser` (on this node or another, over Redis) send that connection `added` —
// in a history room with the position its live messages start after — or `removed`. The client
// keeps `client.rooms` in step: an added room is rejoined after a reconnect and recovered from
// that position, a removed one is never rejoined. And a room whose rejoin is refused for now
// (Redis down) is reported pending, calls naming it wait for it instead of being refused as
// `not_in_room`.
import t from 'tap'
import { connect as connectClient, type RoomsClient } from '../lib/client/index.js'
import { CuttableWebSocket, fastReconnect, fastRestartJitterMs, listen, reconnectGate, Recorder, type Server } from './client-helpers.js'
import { connect as rawConnect, eventually, gatedAdapter, join, roundTrip, type TestClient } from './helpers.js'
import { deleteKeys, RedisServer, SHARED_REDIS, uniquePrefix } from './fixtures/redis-helpers.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import { internalsOf } from '../lib/api.js'
import type { WsRoomsOptions } from '../types/index.js'

type Raw = TestClient & { welcome: any }

const byToken: WsRoomsOptions = { authenticate: (token) => ({ id: token }), rateLimit: false }

async function raw (t: { teardown: (fn: () => unknown) => void }, server: Server, user: string): Promise<Raw> {
  const client = await rawConnect(`${server.url}?token=${user}`)
  t.teardown(() => client.ws.terminate())
  return client
}

async function say (from: TestClient, room: string, text: string): Promise<number> {
  const ack = await from.request({ type: 'message', room, text })
  if (ack.type !== 'ack') throw new Error(JSON.stringify(ack))
  return ack.data.offset
}

/** A real client as `user`, whose connection the test can cut and whose reconnect it can hold. */
function openMoved (t: { teardown: (fn: () => unknown) => void }, server: Server, user: string) {
  const gate = reconnectGate(user)
  const client: RoomsClient<any> = connectClient(server.url, {
    WebSocket: CuttableWebSocket, reconnect: fastReconnect, restartJitterMs: fastRestartJitterMs, token: gate.token, tokenTransport: 'query', presence: false
  })
  const events = new Recorder(client, ['membership', 'recovery', 'rejoined', 'message'])
  t.teardown(() => client.close())
  const socket = CuttableWebSocket
  /** Cut the connection and reconnect once `away` (publishing meanwhile) is done. */
  const cutWhile = async (away: () => Promise<void>): Promise<void> => {
    gate.hold()
    socket.last!.terminate()
    await events.next('close', (info) => info.code === 1006 && info.willReconnect)
    await away()
    gate.release()
  }
  return { client, events, cutWhile }
}

const texts = (events: Recorder, room: string): string[] => events.events('chat').map(([m]) => m).filter((m) => m.room === room).map((m) => m.text)
/** Offsets of the room's messages the application got (not `added`'s position). */
const offsets = (events: Recorder, room: string): number[] => events.events('message').map(([m]) => m).filter((m) => m.type !== 'system' && m.room === room && m.offset !== undefined).map((m) => m.offset)
const membership = (frames: any[]): any[] => frames.filter((m) => m?.type === 'system' && (m.event === 'added' || m.event === 'removed'))

t.test('server-side join and leave: added (with the join position in a history room) and removed, to that connection only', async (t) => {
  const server = await listen({ ...byToken, history: { rooms: (room) => room.startsWith('h-') } })
  t.teardown(() => server.app.close())
  const member = await raw(t, server, 'member')
  await join(member, 'h-room')
  await join(member, 'plain')
  await say(member, 'h-room', 'm1')
  await say(member, 'h-room', 'm2')
  const moved = await raw(t, server, 'moved')
  const id = moved.welcome.connectionId

  await server.app.rooms.join(id, 'h-room')
  const { epoch } = await server.app.rooms.history('h-room')
  t.strictSame(await moved.next({ event: 'added' }), { type: 'system', event: 'added', room: 'h-room', epoch, offset: 2 },
    'in a history room: the epoch and the offset of the last message before the join')
  await say(member, 'h-room', 'm3')
  t.equal((await moved.next({ type: 'chat' })).offset, 3, 'the live flow goes on right after that offset')
  await server.app.rooms.joinUser('moved', 'plain')
  t.strictSame(await moved.next({ event: 'added' }), { type: 'system', event: 'added', room: 'plain' }, 'a room without history: no position')

  await server.app.rooms.join(id, 'plain')
  await server.app.rooms.joinUser('moved', 'h-room')
  await roundTrip(moved)
  t.equal(membership(moved.received).length, 2, 'a join of a room the connection is already in sends nothing new')

  await server.app.rooms.leave(id, 'plain')
  t.strictSame(await moved.next({ event: 'removed' }), { type: 'system', event: 'removed', room: 'plain' })
  await server.app.rooms.leaveUser('moved', 'h-room')
  t.strictSame(await moved.next({ event: 'removed' }), { type: 'system', event: 'removed', room: 'h-room' })
  await server.app.rooms.leaveUser('moved', 'h-room')
  await server.app.rooms.leave(id, 'plain')
  await roundTrip(moved)
  t.equal(membership(moved.received).length, 4, 'leaving a room it is not in sends nothing')
  t.same((await moved.request({ type: 'message', room: 'h-room', text: 'x' })).code, 'not_in_room', 'and it is out')

  await roundTrip(member)
  t.same(membership(member.received), [], 'the other members get no membership frames')
  t.same(member.received.filter((m) => m.type === 'system' && m.user?.id === 'moved').map((m) => `${m.event} ${m.room}`),
    ['join h-room', 'join plain', 'leave plain', 'leave h-room'], 'only the usual join and leave events')
})

t.test('the client: an added history room is in client.rooms, rejoined after a reconnect and recovered, nothing missed or twice', async (t) => {
  const server = await listen({ ...byToken, history: {} })
  t.teardown(() => server.app.close())
  const { client, events, cutWhile } = openMoved(t, server, 'eve')
  await client.ready()
  const other = await raw(t, server, 'other')
  await join(other, 'r')
  await say(other, 'r', 'm1')

  await server.app.rooms.joinUser('eve', 'r')
  t.same((await events.next('membership'))[0], { room: 'r', joined: true }, 'membership event')
  t.same([...client.rooms], ['r'], 'client.rooms has it')
  t.equal(client.roomState('r'), 'joined')
  await say(other, 'r', 'm2')
  await events.next('chat', (m) => m.text === 'm2')

  await cutWhile(async () => {
    await say(other, 'r', 'm3')
    await server.app.rooms.broadcast('r', { type: 'news', room: 'r', text: 'm4' })
  })
  t.same((await events.next('recovery'))[0], { room: 'r', recovered: true, missed: 2 }, 'recovered from the added position')
  const [opened] = await events.next('open', (info) => info.reconnected)
  t.same(opened.rooms, ['r'], 'rejoined')
  t.same(opened.pending, [])
  await say(other, 'r', 'm5')
  await events.next('chat', (m) => m.text === 'm5')
  t.same(texts(events, 'r'), ['m2', 'm3', 'm5'])
  t.same(offsets(events, 'r'), [2, 3, 4, 5], 'every offset after the join once, in order')
  t.equal(events.events('membership').length, 1, 'no membership event for the rejoin')
})

for (const adapter of ['memory', 'redis'] as const) {
  t.test(`a room a connect listener joins on every connection: recovered after each reconnect, nothing twice (${adapter} adapter)`, async (t) => {
    const prefix = uniquePrefix('membership-connect')
    const server = await listen({ ...byToken, history: {}, ...(adapter === 'redis' ? { adapter: redisAdapter({ url: SHARED_REDIS, prefix }) } : {}) }, (app) => {
      app.rooms.on('connect', (conn) => {
        if (conn.user.id === 'eve') app.rooms.join(conn.id, 'lobby').catch((err: unknown) => { t.error(err) })
      })
    })
    t.teardown(async () => {
      await server.app.close()
      if (adapter === 'redis') await deleteKeys(SHARED_REDIS, prefix)
    })
    const other = await raw(t, server, 'other')
    await join(other, 'lobby')
    await say(other, 'lobby', 'm1')
    const { events, cutWhile } = openMoved(t, server, 'eve')
    t.same((await events.next('membership'))[0], { room: 'lobby', joined: true })
    await say(other, 'lobby', 'm2')
    await events.next('chat', (m) => m.text === 'm2')

    for (const round of [1, 2]) {
      await cutWhile(async () => {
        await say(other, 'lobby', `away${round}a`)
        await say(other, 'lobby', `away${round}b`)
      })
      t.same((await events.next('recovery'))[0], { room: 'lobby', recovered: true, missed: 2 }, `reconnect ${round}: recovered although the server joined it again first`)
      await events.next('open', (info) => info.reconnected)
    }
    await say(other, 'lobby', 'last')
    await events.next('chat', (m) => m.text === 'last')
    t.same(texts(events, 'lobby'), ['m2', 'away1a', 'away1b', 'away2a', 'away2b', 'last'], 'every message once, in order')
    t.same(offsets(events, 'lobby'), [2, 3, 4, 5, 6, 7])
    t.equal(events.events('membership').length, 1, 'one membership event: the room never left client.rooms')
    t.same((await server.app.rooms.members('lobby')).map((m) => m.user.id).sort(), ['eve', 'other'], 'one membership each')
  })
}

t.test('a rejoin with since that arrives while the server is still joining the connection: it waits, then recovers, each message once', async (t) => {
  const { adapter, hold, release } = gatedAdapter('addPresence')
  const server = await listen({ ...byToken, history: {}, adapter }, (app) => {
    app.rooms.on('connect', (conn) => {
      if (conn.user.id === 'eve') app.rooms.join(conn.id, 'lobby').catch((err: unknown) => { t.error(err) })
    })
  })
  t.teardown(() => server.app.close())
  const news = async (text: string): Promise<void> => await server.app.rooms.broadcast('lobby', { type: 'news', room: 'lobby', text })
  const other = await raw(t, server, 'other')
  await join(other, 'lobby')
  await news('m1')
  await news('m2')
  const { epoch } = await server.app.rooms.history('lobby')

  // Eve comes back having seen offset 1. The connect listener's join is held on its presence write
  // (its position, offset 2, is read), and a message comes meanwhile.
  hold()
  const eve = await raw(t, server, 'eve')
  eve.send({ type: 'join', room: 'lobby', since: { epoch, offset: 1 }, id: 'rejoin' })
  const hub = internalsOf(server.app.rooms)!.hub as any
  const underWay = (): any => hub.joins.serverJoins.get(hub.connection(eve.welcome.connectionId))?.get('lobby')
  await eventually(() => underWay()?.resumed === true ? true : undefined, 'the rejoin to wait on the server join') // internals: the ordering this test is about
  await news('m3')
  release()

  const ack = await eve.next({ id: 'rejoin' })
  t.strictSame(ack.data, { recovered: true, epoch, offset: 3 }, 'recovered from since')
  await news('m4')
  await eve.next((m) => m.type === 'news' && m.text === 'm4')
  const added = eve.received.find((m) => m.event === 'added')
  t.strictSame(added, { type: 'system', event: 'added', room: 'lobby', epoch, offset: 2 }, 'added, with the server join\'s position')
  t.same(eve.received.filter((m) => m.type === 'news').map((m) => m.offset), [2, 3, 4], 'each message once, in order: the missed ones before the ack, then the live flow')
  t.ok(eve.received.indexOf(ack) > eve.received.findIndex((m) => m.offset === 3), 'the recovered ones come before the ack')
})

t.test('a client the server removed from a room (leaveUser) does not rejoin it after a reconnect', async (t) => {
  const server = await listen({ ...byToken })
  t.teardown(() => server.app.close())
  const { client, events, cutWhile } = openMoved(t, server, 'eve')
  await client.join('r')
  await client.join('stay')
  await server.app.rooms.leaveUser('eve', 'r')
  await client.members('stay') // a round trip: the server's frames sent before its answer are in

  await cutWhile(async () => {})
  const [opened] = await events.next('open', (info) => info.reconnected)
  const members = await server.app.rooms.members('r')
  t.same(members.map((m) => m.user.id), [], 'not rejoined')
  t.same(opened.rooms, ['stay'], 'only the other room was rejoined')
  t.same([...client.rooms], ['stay'])
  t.same(events.events('membership').map(([info]) => info), [{ room: 'r', joined: false }], 'membership event')
  t.equal(client.roomState('r'), undefined)
})

t.test('across two nodes over Redis: joinUser and leaveUser issued on the other node', async (t) => {
  const prefix = uniquePrefix('membership-nodes')
  const node = async (): Promise<Server> => await listen({ ...byToken, history: {}, adapter: redisAdapter({ url: SHARED_REDIS, prefix }) })
  const A = await node()
  const B = await node()
  t.teardown(async () => {
    await A.app.close()
    await B.app.close()
    await deleteKeys(SHARED_REDIS, prefix)
  })
  const sender = await raw(t, A, 'sender')
  await join(sender, 'r')
  await say(sender, 'r', 'm1')

  t.test('added carries the position the live flow starts after, while messages are published', async (t) => {
    const watcher = await raw(t, B, 'watcher')
    const burst = (async () => { for (let i = 0; i < 20; i++) await say(sender, 'r', `b${i}`) })()
    await A.app.rooms.joinUser('watcher', 'r')
    const last = await burst.then(() => say(sender, 'r', 'end'))
    const added = await watcher.next({ event: 'added' })
    t.match(added, { type: 'system', event: 'added', room: 'r', epoch: String, offset: Number })
    await watcher.next((m) => m.type === 'chat' && m.offset === last)
    const seen = watcher.received.filter((m) => m.type === 'chat').map((m) => m.offset)
    t.same(seen, Array.from({ length: last - added.offset }, (_, i) => added.offset + 1 + i), 'every offset after it, once, in order')
  })

  t.test('the real client on B: recovered after a reconnect; removed from A, never rejoined', async (t) => {
    const { client, events, cutWhile } = openMoved(t, B, 'eve')
    await client.ready()
    await A.app.rooms.joinUser('eve', 'r')
    t.same((await events.next('membership'))[0], { room: 'r', joined: true })
    t.same([...client.rooms], ['r'])
    const at = await say(sender, 'r', 'before')
    await events.next('chat', (m) => m.text === 'before')

    await cutWhile(async () => {
      await say(sender, 'r', 'away1')
      await say(sender, 'r', 'away2')
    })
    t.same((await events.next('recovery'))[0], { room: 'r', recovered: true, missed: 2 })
    t.same((await events.next('open', (info) => info.reconnected))[0].rooms, ['r'])
    await say(sender, 'r', 'after')
    await events.next('chat', (m) => m.text === 'after')
    t.same(texts(events, 'r'), ['before', 'away1', 'away2', 'after'])
    t.same(offsets(events, 'r'), [at, at + 1, at + 2, at + 3])

    await A.app.rooms.leaveUser('eve', 'r')
    t.same((await events.next('membership'))[0], { room: 'r', joined: false })
    t.same([...client.rooms], [])
    await cutWhile(async () => {})
    const [opened] = await events.next('open', (info) => info.reconnected)
    t.same(opened.rooms, [], 'not rejoined')
    await eventually(async () => (await A.app.rooms.members('r')).every((m) => m.user.id !== 'eve') ? true : undefined, 'eve out of the room on every node')
  })
})

t.test('a rejoin refused while Redis is down: the room is pending, a send to it waits and is delivered once when Redis is back', async (t) => {
  const redis = await RedisServer.start({ persistent: true })
  t.teardown(() => redis.dispose())
  const server = await listen({ ...byToken, history: {}, adapter: redisAdapter({ url: redis.url, prefix: uniquePrefix('membership-pending'), presenceTtl: 1200 }) })
  t.teardown(() => server.app.close())
  const { client, events, cutWhile } = openMoved(t, server, 'eve')
  await client.join('r')
  await client.join('q')
  const receiver = await raw(t, server, 'receiver')
  await join(receiver, 'r')
  await client.send('r', 'before')
  await receiver.next((m) => m.type === 'chat' && m.text === 'before')

  await cutWhile(async () => { await redis.stop() })
  const [refused] = await events.next('error', (err) => err.room === 'r')
  t.equal(refused.code, 'unavailable', 'the rejoin was refused: the history cannot be read')
  const [opened] = await events.next('open', (info) => info.reconnected)
  const sent = client.send('r', 'queued').then(() => 'delivered', (err) => err.code)
  t.same(opened.rooms, [], 'not rejoined yet')
  t.same(opened.pending, ['r', 'q'], 'pending: their rejoins are retried')
  t.same([...client.rooms], ['r', 'q'])
  t.equal(client.roomState('r'), 'rejoining')
  await t.resolves(client.leave('q'), 'a pending room is left without the server refusing it')
  t.equal(client.roomState('q'), undefined)

  await redis.start()
  t.equal(await sent, 'delivered', 'the send waited for the rejoin: not refused with not_in_room')
  t.same((await events.next('rejoined'))[0], { room: 'r' }, 'rejoined once Redis is back')
  t.equal(client.roomState('r'), 'joined')
  await client.send('r', 'after')
  await receiver.next((m) => m.type === 'chat' && m.text === 'after')
  t.same(receiver.received.filter((m) => m.type === 'chat').map((m) => m.text), ['before', 'queued', 'after'], 'delivered once, in order')
  t.same(events.events('error').filter(([err]) => err.room === 'r').length, 1, 'one error for the outage')
  t.same((await server.app.rooms.members('q')).map((m) => m.user.id), [], 'the room left while pending was not rejoined')
})
