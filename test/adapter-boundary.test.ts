// The RoomsAdapter boundary, seen from a custom adapter: what the broker asks of it and when,
// what arrives from "another node", and that a failing adapter never costs local delivery.
import t from 'tap'
import type { AdapterNode, RoomMember, RoomsAdapter } from '../types/index.js'
import { captureLogs, join, roundTrip, serve, until } from './helpers.js'

interface RecordingAdapter extends RoomsAdapter {
  calls: string[]
  node: AdapterNode | undefined
  failPublish: boolean
  failSubscribe: boolean
}

function recordingAdapter (): RecordingAdapter {
  const adapter: RecordingAdapter = {
    calls: [],
    node: undefined,
    failPublish: false,
    failSubscribe: false,
    init (node) { adapter.node = node },
    async publishToRoom (room, payload, except) {
      adapter.calls.push(`publishToRoom ${room} ${payload} ${except ?? '-'}`)
      if (adapter.failPublish) throw new Error('bus down')
    },
    async publishToUser (userId, payload) {
      adapter.calls.push(`publishToUser ${userId} ${payload}`)
      if (adapter.failPublish) throw new Error('bus down')
    },
    async publishToAll (payload) {
      adapter.calls.push(`publishToAll ${payload}`)
      if (adapter.failPublish) throw new Error('bus down')
    },
    async subscribeRoom (room) {
      adapter.calls.push(`subscribeRoom ${room}`)
      if (adapter.failSubscribe) throw new Error('bus down')
    },
    unsubscribeRoom (room) { adapter.calls.push(`unsubscribeRoom ${room}`) },
    subscribeUser (userId) { adapter.calls.push(`subscribeUser ${userId}`) },
    unsubscribeUser (userId) { adapter.calls.push(`unsubscribeUser ${userId}`) },
    addPresence (room, member: RoomMember) { adapter.calls.push(`addPresence ${room} ${member.user.id}`) },
    removePresence (room) { adapter.calls.push(`removePresence ${room}`) },
    members (room) { return [...adapter.node!.localMembers(room), { connectionId: 'elsewhere-1', user: { id: 'remote' } }] },
    close () { adapter.calls.push('close') }
  }
  return adapter
}

const userToken = { authenticate: (token: string) => ({ id: token }) }

t.test('the broker asks the adapter to subscribe, publish and keep presence at the right moments', async (t) => {
  const adapter = recordingAdapter()
  const s = await serve(t, { ...userToken, adapter })
  const a = await s.open({ headers: { authorization: 'Bearer alice' } })
  const b = await s.open({ headers: { authorization: 'Bearer bob' } })
  t.same(adapter.calls, ['subscribeUser alice', 'subscribeUser bob'], 'one user subscription per connected user')
  adapter.calls.length = 0

  await join(a, 'r')
  await join(b, 'r')
  const joinEvent = (user: string) => `{"type":"system","event":"join","room":"r","user":{"id":"${user}"},"text":"User joined room"}`
  t.same(adapter.calls, [
    'subscribeRoom r', 'addPresence r alice', `publishToRoom r ${joinEvent('alice')} -`,
    'addPresence r bob', `publishToRoom r ${joinEvent('bob')} -`
  ], 'subscribed once, on the first local member; join events published')
  adapter.calls.length = 0

  a.send({ type: 'message', room: 'r', text: 'hi' })
  await b.next({ type: 'chat' })
  t.same(adapter.calls, [`publishToRoom r {"type":"chat","room":"r","user":{"id":"alice"},"text":"hi"} ${a.welcome.connectionId}`],
    'a chat is published once, with the sender excepted')
  adapter.calls.length = 0

  await s.app.rooms.sendToUser('bob', { type: 'dm' })
  await s.app.rooms.broadcastAll({ type: 'all' })
  t.same(adapter.calls, ['publishToUser bob {"type":"dm"}', 'publishToAll {"type":"all"}'])
  t.same(adapter.node!.localRooms(), ['r'])
  t.same((await s.app.rooms.members('r')).map((m) => m.user.id).sort(), ['alice', 'bob', 'remote'], 'members() is the adapter\'s answer')
  adapter.calls.length = 0

  await b.request({ type: 'leave', room: 'r' })
  await a.close()
  await until(() => adapter.calls.includes('unsubscribeUser alice'))
  t.same(adapter.calls.filter((c) => !c.startsWith('publishToRoom')), [
    'removePresence r', 'unsubscribeRoom r', 'removePresence r', 'unsubscribeUser alice'
  ], 'presence removed per leave; the room unsubscribed when its last local member left, then the user')
  t.same(adapter.node!.localRooms(), [])
})

t.test('what the adapter delivers from another node reaches local members, framed as it came', async (t) => {
  const adapter = recordingAdapter()
  const s = await serve(t, { ...userToken, adapter })
  const a = await s.open({ headers: { authorization: 'Bearer alice' } })
  const b = await s.open({ headers: { authorization: 'Bearer bob' } })
  await join(a, 'r')
  await join(b, 'r')
  const node = adapter.node!
  node.deliverToRoom('r', '{"type":"remote","n":1}', b.welcome.connectionId)
  node.deliverToUser('bob', '{"type":"remote-dm"}')
  node.deliverToAll('{"type":"remote-all"}')
  node.deliverToRoom('nobody-here', '{"type":"lost"}')
  t.same(await a.next({ type: 'remote' }), { type: 'remote', n: 1 })
  t.same(await b.next({ type: 'remote-dm' }), { type: 'remote-dm' })
  t.same(await a.next({ type: 'remote-all' }), { type: 'remote-all' })
  t.same(await b.next({ type: 'remote-all' }), { type: 'remote-all' })
  await roundTrip(b)
  t.same(b.received.filter((m) => m.type === 'remote'), [], 'except is honoured for remote deliveries')
  node.countDropped(3)
  t.equal(s.app.rooms.stats().dropped, 3)
})

t.test('a failing adapter costs nothing locally: joins ack, broadcasts resolve, drops are counted and logged', async (t) => {
  const adapter = recordingAdapter()
  adapter.failPublish = true
  adapter.failSubscribe = true
  const logs = captureLogs()
  const s = await serve(t, { ...userToken, adapter }, undefined, { logger: { level: 'error', stream: logs.stream } })
  const a = await s.open({ headers: { authorization: 'Bearer alice' } })
  const b = await s.open({ headers: { authorization: 'Bearer bob' } })
  await join(a, 'r')
  await join(b, 'r')
  a.send({ type: 'message', room: 'r', text: 'still here', id: 1 })
  t.same(await b.next({ type: 'chat' }), { type: 'chat', room: 'r', user: { id: 'alice' }, text: 'still here' })
  await t.resolves(s.app.rooms.broadcast('r', { type: 'local' }))
  t.same(await b.next({ type: 'local' }), { type: 'local' })
  await until(() => s.app.rooms.stats().dropped >= 4)
  await roundTrip(a)
  // Two join events, the chat and the broadcast: each failed publication counted once.
  t.equal(s.app.rooms.stats().dropped, 4, 'every failed publication is counted in dropped, once')
  t.ok(logs.records().some((r) => /rooms adapter subscribeRoom|could not subscribe/.test(r.msg)), 'the subscribe failure is logged')
  t.ok(logs.records().some((r) => /rooms adapter publishToRoom failed/.test(r.msg)), 'the publish failure is logged')
})

t.test('a fastify.rooms listener that throws is logged and changes nothing', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, {}, (app) => {
    app.rooms.on('join', () => { throw new Error('listener bug') })
    app.rooms.on('connect', () => { throw new Error('listener bug') })
  }, { logger: { level: 'error', stream: logs.stream } })
  const a = await s.open()
  await join(a, 'r')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  t.equal(logs.records().filter((r) => r.msg === 'a fastify.rooms event listener threw').length, 2)
})
