// §10 from the client's side: client.presence(room) and the `presence` event, loaded from the
// `members` answer after the join and kept from join/leave events (`each`) or presence frames
// (`batched`), with users counted once per connection.
import t from 'tap'
import WebSocket from 'ws'
import { connect as connectClient, type RoomsClient } from '../lib/client/index.js'
import type { ConnectOptions } from '../types/client.js'
import type { WsRoomsOptions } from '../types/index.js'
import { fastReconnect, fastRestartJitterMs, listen, listenRestartable, Recorder, type Server } from './client-helpers.js'
import { connect as rawConnect, join, type TestClient } from './helpers.js'

const withUsers: WsRoomsOptions = { authenticate: (token) => ({ id: token }) }

function open (t: { teardown: (fn: () => unknown) => void }, server: Server, user: string, options: ConnectOptions = {}): { client: RoomsClient<any>, events: Recorder } {
  const client = connectClient(server.url, { WebSocket, reconnect: fastReconnect, restartJitterMs: fastRestartJitterMs, token: user, ...options })
  const events = new Recorder(client, ['presence'])
  t.teardown(() => client.close())
  return { client, events }
}

async function member (t: { teardown: (fn: () => unknown) => void }, server: Server, user: string, room: string): Promise<TestClient> {
  const other = await rawConnect(server.url + '?token=' + user)
  t.teardown(() => other.close())
  await join(other, room)
  return other
}

/** The view with its users sorted, for comparing. */
function shape (view: any): { size: number, members: string[], complete: boolean } {
  return { size: view.size, members: view.members.map((u: any) => u.id).sort(), complete: view.complete }
}

async function viewWith (events: Recorder, size: number, members: string[]): Promise<any> {
  const [view] = await events.next('presence', (v) => v.size === size && shape(v).members.join() === [...members].sort().join())
  return view
}

for (const mode of ['each', 'batched'] as const) {
  t.test(`${mode}: joins and leaves, a user with two connections counted twice and listed once`, async (t) => {
    const server = await listen({ ...withUsers, presenceEvents: mode, presenceInterval: 30 })
    t.teardown(() => server.app.close())
    const { client, events } = open(t, server, 'alice')
    t.equal(client.presence('r'), undefined, 'no view before the join')
    await client.join('r')
    const loaded = await viewWith(events, 1, ['alice'])
    t.same(loaded, { room: 'r', size: 1, members: [{ id: 'alice' }], complete: true }, 'loaded from the members answer')

    const bob1 = await member(t, server, 'bob', 'r')
    await viewWith(events, 2, ['alice', 'bob'])
    const bob2 = await member(t, server, 'bob', 'r')
    await viewWith(events, 3, ['alice', 'bob'])
    await member(t, server, 'carol', 'r')
    await viewWith(events, 4, ['alice', 'bob', 'carol'])
    await bob1.request({ type: 'leave', room: 'r' })
    await viewWith(events, 3, ['alice', 'bob', 'carol'])
    await bob2.close() // a disconnect is a leave too
    const last = await viewWith(events, 2, ['alice', 'carol'])
    t.same(shape(client.presence('r')), shape(last), 'presence(room) is the last view emitted')
    t.same(shape(last), { size: 2, members: ['alice', 'carol'], complete: true })
    // The server agrees.
    t.same((await client.members('r')).size, 2)

    await client.leave('r')
    t.equal(client.presence('r'), undefined, 'no view after leaving')
  })
}

t.test('batched: joins already in the members answer and in the next batch are not counted twice', async (t) => {
  const server = await listen({ ...withUsers, presenceEvents: 'batched', presenceInterval: 50 })
  t.teardown(() => server.app.close())
  // bob and alice join within one interval: the batch after alice's members answer lists both.
  const bob = await member(t, server, 'bob', 'r')
  const { client, events } = open(t, server, 'alice')
  await client.join('r')
  await viewWith(events, 2, ['alice', 'bob'])
  const batch = await bob.next((m) => m.event === 'presence' && m.joined.some((u: any) => u.id === 'alice'))
  t.same(batch.joined.map((u: any) => u.id).sort(), ['alice', 'bob'], 'the batch repeats what the answer had')
  await viewWith(events, 2, ['alice', 'bob'])
  await bob.request({ type: 'leave', room: 'r' })
  t.same(shape(await viewWith(events, 1, ['alice'])), { size: 1, members: ['alice'], complete: true }, 'bob\'s one leave takes him out')
})

t.test('presence: false sends no members request; members() asks and starts the view', async (t) => {
  const server = await listen({ ...withUsers, presenceEvents: 'each' })
  t.teardown(() => server.app.close())
  await member(t, server, 'bob', 'r')
  const { client, events } = open(t, server, 'alice', { presence: false })
  await client.join('r')
  const before = server.app.rooms.stats().messagesIn
  await member(t, server, 'carol', 'r')
  await events.next('system', (e) => e.event === 'join' && e.user.id === 'carol')
  t.equal(client.presence('r'), undefined, 'no view')
  t.equal(events.events('presence').length, 0)

  const answer = await client.members('r')
  t.equal(answer.size, 3)
  t.same(answer.members.map((m) => m.user.id).sort(), ['alice', 'bob', 'carol'])
  t.equal(server.app.rooms.stats().messagesIn, before + 2, 'only carol\'s join and our members request reached the server')
  t.same(shape(client.presence('r')), { size: 3, members: ['alice', 'bob', 'carol'], complete: true })
  await member(t, server, 'dave', 'r')
  t.same(shape(await viewWith(events, 4, ['alice', 'bob', 'carol', 'dave'])).size, 4, 'followed from then on')
})

t.test('a members answer cut at membersLimit is marked incomplete, and its size is the whole room', async (t) => {
  const server = await listen({ ...withUsers, presenceEvents: 'each', membersLimit: 2 })
  t.teardown(() => server.app.close())
  for (const user of ['bob', 'carol', 'dave']) await member(t, server, user, 'r')
  const { client, events } = open(t, server, 'alice')
  await client.join('r')
  const [view] = await events.next('presence')
  t.equal(view.size, 4)
  t.equal(view.members.length, 2)
  t.equal(view.complete, false)
})

t.test('the view is reloaded after a reconnect', async (t) => {
  let server = await listenRestartable({ ...withUsers, presenceEvents: 'each' })
  t.teardown(() => server.app.close())
  await member(t, server, 'bob', 'r')
  const { client, events } = open(t, server, 'alice')
  await client.join('r')
  await viewWith(events, 2, ['alice', 'bob'])
  const port = server.port
  await server.app.close()
  server = await listen({ ...withUsers, presenceEvents: 'each' }, undefined, port)
  await events.next('open', (info) => info.reconnected)
  t.same(shape(await viewWith(events, 1, ['alice'])), { size: 1, members: ['alice'], complete: true }, 'bob is not on the new server')
})
