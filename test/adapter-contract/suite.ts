// What every RoomsAdapter must give the plugin, as seen through real sockets: one suite, run once
// per backend by the adapter-contract-*.test.ts runners (as socket.io-redis-adapter runs one suite
// per adapter). Each case places its clients on `on(i)` = servers[i % nodes], so it holds on one
// node (memory) as on three (Redis, Redis Cluster); each case has its own rooms and users, and
// closes its clients when it ends. The outage group needs a link it can cut; it runs last, since
// on a Redis Cluster it kills a master of the cluster every other group used.
import type { Test } from 'tap'
import { eventually, join, roundTrip, until, type StartedServer } from '../helpers.js'
import type { WsRoomsOptions } from '../../types/index.js'
import type { Backend, Client, Nodes } from './backends.js'

/** Rooms `h-*` keep history, rooms `b-*` get batched presence frames, every other room `each` events. */
const OPTIONS: WsRoomsOptions = {
  history: { rooms: (room) => room.startsWith('h-'), size: 1000 },
  presenceEvents: (room) => room.startsWith('b-') ? 'batched' : 'each',
  presenceInterval: 100,
  // Below the biggest room here, so a `members` answer is capped and its size must come from every node.
  membersLimit: 4
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
const ids = (members: Array<{ user: { id: string } }>): string[] => members.map((m) => m.user.id).sort()
const userOf = (client: Client): string => client.welcome.user.id
const framesOf = (client: Client, match: (m: any) => boolean): any[] => client.received.filter((m) => m !== null && typeof m === 'object' && match(m))
const chatsIn = (client: Client, room: string): any[] => framesOf(client, (m) => m.type === 'chat' && m.room === room)
const presenceIn = (room: string) => (client: Client): any[] => framesOf(client, (m) => m.type === 'system' && m.event === 'presence' && m.room === room)
/** The users named in the `joined` (or `left`) lists of these presence frames. */
const heard = (frames: any[], list: 'joined' | 'left'): Set<string> => new Set(frames.flatMap((m) => m[list].map((u: any) => u.id)))
const isEvent = (event: string, room: string, user: string) => (m: any) => m.type === 'system' && m.event === event && m.room === room && m.user?.id === user

export async function adapterContract (t: Test, backend: Backend): Promise<void> {
  const nodes = await backend.start(t, OPTIONS)
  const n = backend.nodes
  const on = (i: number): StartedServer => nodes.servers[i % n]

  /** Clients for one case: opened on `on(i)`, terminated when the case ends. */
  function clients (t: Test, from: Nodes = nodes): (i: number, user: string) => Promise<Client> {
    const opened: Client[] = []
    t.teardown(() => { for (const c of opened) c.ws.terminate() })
    return async (i, user) => {
      const client = await from.open(from.servers[i % from.servers.length], user)
      opened.push(client)
      return client
    }
  }

  /** `count` members of `room` named `${stem}${i}`, member i on on(i), each join acked. */
  async function members (open: (i: number, user: string) => Promise<Client>, room: string, stem: string, count: number): Promise<Client[]> {
    const list: Client[] = []
    for (let i = 0; i < count; i++) {
      const client = await open(i, `${stem}${i}`)
      await join(client, room)
      list.push(client)
    }
    return list
  }

  const membersEverywhere = async (room: string, expected: string[]): Promise<void> => await membersOn(nodes.servers, room, expected)

  /** Once a user command from node 0 reaches every one of `conns` (the user's connections). */
  async function reachable (user: string, conns: Client[]): Promise<void> {
    await eventually(async () => {
      const id = Math.random().toString(36).slice(2)
      await on(0).app.rooms.sendToUser(user, { type: 'reachable', id })
      await new Promise((resolve) => setTimeout(resolve, 50))
      return conns.every((c) => c.received.some((m) => m?.type === 'reachable' && m.id === id)) ? true : undefined
    }, `the connections of ${user} to be reachable from node 0`, 10_000, 0)
  }

  // When a case fails, whether a node counted something as dropped (it saw its link as down) says
  // whether the adapter lost a message or knowingly gave up on one.
  const droppedAt = new Map<Test, number[]>()
  const droppedNow = (): number[] => nodes.servers.map((s) => s.app.rooms.stats().dropped)
  t.beforeEach((t) => { droppedAt.set(t, droppedNow()) })
  t.afterEach((t) => {
    const before = droppedAt.get(t)
    droppedAt.delete(t)
    const now = droppedNow()
    if (before !== undefined && now.some((d, i) => d !== before[i])) t.comment(`dropped during this case, per node: ${now.map((d, i) => d - before[i]).join(', ')}`)
  })

  t.test('publish and deliver', async (t) => {
    // First in the file: nothing else is going on, so the quiet node's counter moves only for us.
    t.test('a node with no local member of a room receives nothing for it', async (t) => {
      const open = clients(t)
      const quiet = nodes.servers[n - 1]
      // Members of the room on every other node (none with one node: the room has no member at all).
      const inRoom: Client[] = []
      for (let i = 0; i < n - 1; i++) {
        inRoom.push(await open(i, `quiet-member-${i}`))
        await join(inRoom[i], 'quiet-room')
      }
      const watcher = await open(n - 1, 'quiet-watcher')
      await join(watcher, 'quiet-other')
      await watcher.next(isEvent('join', 'quiet-other', 'quiet-watcher'))
      t.notOk(quiet.app.rooms.rooms().some((r) => r.room === 'quiet-room'), 'the quiet node has no local room')
      const before = quiet.app.rooms.stats().messagesOut
      await on(0).app.rooms.broadcast('quiet-room', { type: 'for-room', n: 1 })
      for (const member of inRoom) await member.next({ type: 'for-room' })
      // Published after it, by the same node: once it has arrived, the first one would have too.
      await on(0).app.rooms.broadcast('quiet-other', { type: 'marker' })
      await watcher.next({ type: 'marker' })
      t.equal(quiet.app.rooms.stats().messagesOut - before, 1, 'the quiet node sent one frame: the marker of the room it has a member in')
      t.equal(framesOf(watcher, (m) => m.type === 'for-room').length, 0, 'its member got nothing of the other room')
    })

    t.test('broadcast reaches every member on every node exactly once; except is honoured', async (t) => {
      const open = clients(t)
      const list = await members(open, 'bc-room', 'bc-', 6)
      const skipped = list[1] // on another node than the publisher when there is one
      await on(0).app.rooms.broadcast('bc-room', { type: 'news', n: 1 }, { except: skipped.welcome.connectionId })
      await on(0).app.rooms.broadcast('bc-room', { type: 'news', n: 2 })
      for (const member of list) await member.next((m) => m.type === 'news' && m.n === 2)
      for (const [i, member] of list.entries()) {
        const got = framesOf(member, (m) => m.type === 'news' && m.n === 1).length
        t.equal(got, member === skipped ? 0 : 1, `member ${i} (node ${i % n}) got it ${member === skipped ? 'never (except)' : 'once'}`)
      }
    })

    t.test('a chat goes to every other member on every node, not to its sender', async (t) => {
      const open = clients(t)
      const list = await members(open, 'chat-room', 'chat-', 3)
      const [sender, ...others] = list
      t.same(await sender.request({ type: 'message', room: 'chat-room', text: 'hello' }, 'hello'), { type: 'ack', id: 'hello' }, 'acked')
      for (const other of others) {
        t.same(await other.next((m) => m.type === 'chat' && m.text === 'hello'),
          { type: 'chat', room: 'chat-room', user: { id: userOf(sender) }, text: 'hello' }, `${userOf(other)} got it`)
      }
      // Published after it, from another node: once the sender has this one, its own would have come.
      others[others.length - 1].send({ type: 'message', room: 'chat-room', text: 'marker' })
      await sender.next((m) => m.type === 'chat' && m.text === 'marker')
      t.equal(framesOf(sender, (m) => m.type === 'chat' && m.text === 'hello').length, 0, 'the sender did not get its own chat')
    })

    t.test('sendToUser crosses nodes', async (t) => {
      const open = clients(t)
      const target = [await open(1, 'dm-target'), await open(2, 'dm-target')]
      const bystander = await open(0, 'dm-bystander')
      await reachable('dm-target', target)
      await reachable('dm-bystander', [bystander])
      await on(0).app.rooms.sendToUser('dm-target', { type: 'dm', text: 'for you' })
      for (const client of target) t.same(await client.next({ type: 'dm' }), { type: 'dm', text: 'for you' }, 'each connection of the user got it')
      await on(0).app.rooms.sendToUser('dm-bystander', { type: 'dm', text: 'marker' })
      await bystander.next({ type: 'dm' })
      t.same(framesOf(bystander, (m) => m.type === 'dm'), [{ type: 'dm', text: 'marker' }], 'another user got only its own')
    })

    // On a Redis Cluster broadcastAll travels over plain pub/sub, rooms and users over sharded pub/sub:
    // by now the earlier cases' rooms and users were unsubscribed (SUNSUBSCRIBE) on every node.
    t.test('broadcastAll crosses nodes', async (t) => {
      const open = clients(t)
      const list = [await open(0, 'all-0'), await open(1, 'all-1'), await open(2, 'all-2')]
      for (const [k, from] of nodes.servers.entries()) {
        await from.app.rooms.broadcastAll({ type: 'notice', from: k })
        for (const client of list) {
          t.same(await client.next((m) => m.type === 'notice' && m.from === k), { type: 'notice', from: k }, `from node ${k} to ${userOf(client)}`)
        }
      }
    })

    t.test('200 messages from one publisher arrive in order on every node', async (t) => {
      const open = clients(t)
      const [publisher, ...receivers] = await members(open, 'order-room', 'order-', 4)
      for (let i = 0; i < 200; i++) publisher.send({ type: 'message', room: 'order-room', text: String(i) })
      for (const receiver of receivers) {
        await until(() => chatsIn(receiver, 'order-room').length >= 200, 10_000, `${userOf(receiver)} to get 200 messages`)
        t.same(chatsIn(receiver, 'order-room').map((m) => Number(m.text)), range(0, 199), `${userOf(receiver)}: 0..199, once each, in order`)
      }
    })
  })

  t.test('presence', async (t) => {
    t.test('members() lists the members on every node and honours limit; a members request gives the size', async (t) => {
      const open = clients(t)
      const list = await members(open, 'pm-room', 'pm-', 6)
      const everyone = list.map(userOf).sort()
      await membersEverywhere('pm-room', everyone)
      for (const [i, server] of nodes.servers.entries()) {
        const limited = await server.app.rooms.members('pm-room', { limit: 2 })
        t.equal(limited.length, 2, `node ${i}: limit 2 gives 2`)
        t.ok(limited.every((m) => everyone.includes(m.user.id)), `node ${i}: members of the room`)
        t.equal(new Set(limited.map((m) => m.connectionId)).size, 2, `node ${i}: two different connections`)
      }
      // membersLimit is 4: the answer lists 4 of the 6, its size counts all of them on every node.
      const answer = await list[1].request({ type: 'members', room: 'pm-room' })
      t.equal(answer.type, 'ack')
      t.equal(answer.data.size, 6, 'size: every member on every node')
      t.equal(answer.data.members.length, 4, 'members: at most membersLimit')
      t.ok(answer.data.members.every((m: any) => everyone.includes(m.user.id) && typeof m.connectionId === 'string'), 'each a member, with its connection id')
      const small = await members(open, 'pm-small', 'pm-small-', 3)
      await membersEverywhere('pm-small', small.map(userOf).sort())
      const whole = await small[2].request({ type: 'members', room: 'pm-small' })
      t.equal(whole.data.size, 3, 'an uncapped answer: its size')
      t.same(ids(whole.data.members), small.map(userOf).sort(), 'and every member')
      t.same(whole.data.members.map((m: any) => m.connectionId).sort(), small.map((c) => c.welcome.connectionId).sort(), 'with their connection ids')
    })

    t.test('a leave and a disconnect disappear from members() on every node', async (t) => {
      const open = clients(t)
      const [stays, leaves, drops] = await members(open, 'pl-room', 'pl-', 3)
      await membersEverywhere('pl-room', ['pl-0', 'pl-1', 'pl-2'])
      t.equal((await leaves.request({ type: 'leave', room: 'pl-room' })).type, 'ack', 'the leave is acked')
      drops.ws.terminate()
      await membersEverywhere('pl-room', [userOf(stays)])
      t.pass('only the member that stayed is listed, on every node')
    })

    t.test('each: join and leave events reach members on other nodes', async (t) => {
      const open = clients(t)
      const watcher = await open(0, 'pe-watcher')
      await join(watcher, 'pe-room')
      const leaver = await open(1, 'pe-leaver')
      await join(leaver, 'pe-room')
      t.same(await watcher.next(isEvent('join', 'pe-room', 'pe-leaver')),
        { type: 'system', event: 'join', room: 'pe-room', user: { id: 'pe-leaver' }, text: 'User joined room' }, 'a join on another node')
      await leaver.request({ type: 'leave', room: 'pe-room' })
      t.same(await watcher.next(isEvent('leave', 'pe-room', 'pe-leaver')),
        { type: 'system', event: 'leave', room: 'pe-room', user: { id: 'pe-leaver' }, text: 'User left room' }, 'a leave on another node')
      const dropper = await open(2, 'pe-dropper')
      await join(dropper, 'pe-room')
      await watcher.next(isEvent('join', 'pe-room', 'pe-dropper'))
      dropper.ws.terminate()
      await watcher.next(isEvent('leave', 'pe-room', 'pe-dropper'))
      t.pass('a disconnect on another node is a leave')
    })

    t.test('batched: presence frames reach members on other nodes', async (t) => {
      const open = clients(t)
      const list = await members(open, 'b-frames', 'pb-', 4)
      const presence = presenceIn('b-frames')
      // Joined one after the other: each member hears of itself and of every later joiner, wherever it is.
      for (const [j, member] of list.entries()) {
        const later = list.slice(j).map(userOf)
        await until(() => later.every((user) => heard(presence(member), 'joined').has(user)), 10_000, `${userOf(member)} to hear of ${later.join(', ')}`)
        t.ok(presence(member)[0].joined.some((u: any) => u.id === userOf(member)), `${userOf(member)} is in joined of its first presence frame`)
      }
      t.pass('every member heard of the joiners after it, on every node, in presence frames')
      const events = list.flatMap((member) => framesOf(member, (m) => m.type === 'system' && (m.event === 'join' || m.event === 'leave') && m.room === 'b-frames'))
      t.same(events, [], 'and no join/leave events')
      list[1].ws.terminate()
      for (const member of [list[0], list[2], list[3]]) {
        await until(() => heard(presence(member), 'left').has('pb-1'), 10_000, `${userOf(member)} to hear that pb-1 left`)
      }
      t.pass('a disconnect is in left, on every node')
    })

    // A heartbeat's read of the other nodes' counts, answered after a newer presence diff, set that
    // diff's count back, and the corrected count then went out in no frame.
    t.test('batched: the size in presence frames counts the members on every node', async (t) => {
      const open = clients(t)
      const list = await members(open, 'b-size', 'ps-', 4)
      const presence = presenceIn('b-size')
      const lastSize = (member: Client): number | undefined => presence(member).at(-1)?.size
      for (const [j, member] of list.entries()) {
        const later = list.slice(j).map(userOf)
        await until(() => later.every((user) => heard(presence(member), 'joined').has(user)) && lastSize(member) === 4, 10_000,
          `${userOf(member)}: a last presence frame of size 4`)
      }
      t.pass('once the joins stopped, every member\'s last presence frame says 4')
      list[1].ws.terminate()
      for (const member of [list[0], list[2], list[3]]) {
        await until(() => heard(presence(member), 'left').has('ps-1') && lastSize(member) === 3, 10_000, `${userOf(member)}: ps-1 left, a last frame of size 3`)
      }
      t.pass('after a disconnect on another node, 3')
    })
  })

  t.test('history', async (t) => {
    t.test('two nodes publish: one offset order everywhere, one epoch per room, history() the same on every node', async (t) => {
      const open = clients(t)
      const room = 'h-order'
      const list: Client[] = []
      const acks: any[] = []
      for (let i = 0; i < 3; i++) {
        list.push(await open(i, `ho-${i}`))
        const ack = await list[i].request({ type: 'join', room })
        t.equal(ack.type, 'ack')
        acks.push(ack.data)
      }
      t.same(acks.map((a) => a.offset), [0, 0, 0], 'an empty room: every join acked at offset 0')
      t.equal(new Set(acks.map((a) => a.epoch)).size, 1, 'one epoch for the room, on every node')
      const [first, second, reader] = list
      const publishers = [first, second] // on nodes 0 and 1
      const sent = await Promise.all(range(0, 19).flatMap((i) => publishers.map(async (p, j) => {
        const ack = await p.request({ type: 'message', room, text: `${j}:${i}` })
        return { publisher: p, text: `${j}:${i}`, offset: ack.data?.offset as number }
      })))
      t.same(sent.map((s) => s.offset).sort((x, y) => x - y), range(1, 40), 'the 40 acks carry offsets 1..40')
      await until(() => chatsIn(reader, room).length >= 40, 10_000, 'the reader to get all 40')
      const order = chatsIn(reader, room).map((m) => `${m.offset} ${m.text}`)
      t.same(chatsIn(reader, room).map((m) => m.offset), range(1, 40), 'the reader got offsets 1..40, in order')
      t.same(order, [...sent].sort((x, y) => x.offset - y.offset).map((s) => `${s.offset} ${s.text}`), 'each message under the offset its sender was acked with')
      for (const p of publishers) {
        const others = sent.filter((s) => s.publisher !== p).length
        await until(() => chatsIn(p, room).length >= others, 10_000, `${userOf(p)} to get the other publisher's messages`)
        const got = chatsIn(p, room).map((m) => `${m.offset} ${m.text}`)
        t.same(got, order.filter((line) => !sent.some((s) => s.publisher === p && line === `${s.offset} ${s.text}`)),
          `${userOf(p)}: the same order, without its own messages`)
      }
      const pages = await Promise.all(nodes.servers.map(async (server) => await server.app.rooms.history(room)))
      t.equal(pages[0].epoch, acks[0].epoch, 'history() has the room\'s epoch')
      t.equal(pages[0].offset, 40, 'and its last offset')
      t.same(pages[0].messages.map((m) => `${m.offset} ${String(m.text)}`), order, 'the messages as delivered')
      for (const [i, page] of pages.entries()) t.same(page, pages[0], `history() on node ${i} reads the same`)
    })

    t.test('a join with since on another node recovers what was missed', async (t) => {
      const open = clients(t)
      const room = 'h-recover'
      const publisher = await open(2, 'hr-publisher')
      await join(publisher, room)
      const mobile = await open(0, 'hr-mobile')
      const position = (await mobile.request({ type: 'join', room })).data
      await publisher.request({ type: 'message', room, text: 'seen' })
      const seen = await mobile.next((m) => m.type === 'chat' && m.text === 'seen')
      mobile.ws.terminate()
      await mobile.closed
      for (let i = 0; i < 5; i++) await publisher.request({ type: 'message', room, text: `missed ${i}` })
      const back = await open(1, 'hr-mobile')
      const ack = await back.request({ type: 'join', room, since: { epoch: position.epoch, offset: seen.offset } })
      t.same(ack.data, { recovered: true, epoch: position.epoch, offset: seen.offset + 5 }, 'recovered up to the last offset')
      t.same(chatsIn(back, room).map((m) => [m.offset, m.text]), range(0, 4).map((i) => [seen.offset + 1 + i, `missed ${i}`]),
        'the five missed messages, with their offsets, in order, before the ack')
      publisher.send({ type: 'message', room, text: 'live' })
      const live = await back.next((m) => m.type === 'chat' && m.text === 'live')
      t.equal(live.offset, seen.offset + 6, 'then the live flow from there')
      await roundTrip(back)
      t.equal(chatsIn(back, room).length, 6, 'each message once')
    })
  })

  t.test('user commands reach the user\'s connections on other nodes', async (t) => {
    const open = clients(t)
    const room = 'uc-room'
    const home = on(1) // where the user's first connection lives (another node than the caller's)
    const events: string[] = []
    const onJoin = (conn: { user: { id: string } }, r: string): void => { if (r === room && conn.user.id === 'uc-user') events.push('join') }
    const onLeave = (conn: { user: { id: string } }, r: string): void => { if (r === room && conn.user.id === 'uc-user') events.push('leave') }
    home.app.rooms.on('join', onJoin).on('leave', onLeave)
    t.teardown(() => { home.app.rooms.off('join', onJoin).off('leave', onLeave) })
    const watcher = await open(0, 'uc-watcher')
    await join(watcher, room)
    const user = [await open(1, 'uc-user'), await open(2, 'uc-user')]
    // The join and leave events fire on the node of each connection: here, those of `home`.
    const atHome = user.filter((c) => home.app.rooms.connection(c.welcome.connectionId) !== undefined).length
    await reachable('uc-user', user)

    await on(0).app.rooms.joinUser('uc-user', room)
    for (const conn of user) await conn.next(isEvent('join', room, 'uc-user'))
    await watcher.next(isEvent('join', room, 'uc-user'))
    await membersEverywhere(room, ['uc-user', 'uc-user', 'uc-watcher'])
    t.same(events, Array(atHome).fill('join'), 'the join event fired on the user\'s node, once per connection there')
    watcher.send({ type: 'message', room, text: 'to the joined' })
    for (const conn of user) await conn.next((m) => m.type === 'chat' && m.text === 'to the joined')
    t.pass('joinUser: every connection of the user joined, with the join events, on every node')

    await on(0).app.rooms.leaveUser('uc-user', room)
    await watcher.next(isEvent('leave', room, 'uc-user'))
    await membersEverywhere(room, ['uc-watcher'])
    t.same(events.filter((e) => e === 'leave'), Array(atHome).fill('leave'), 'the leave event fired on the user\'s node, once per connection there')
    watcher.send({ type: 'message', room, text: 'after the leave' })
    await on(0).app.rooms.sendToUser('uc-user', { type: 'marker' })
    for (const conn of user) {
      await conn.next({ type: 'marker' })
      t.equal(framesOf(conn, (m) => m.type === 'chat' && m.text === 'after the leave').length, 0, 'leaveUser: out of the room')
    }

    const other = await open(1, 'uc-other')
    await on(0).app.rooms.disconnectUser('uc-user', { code: 4321, reason: 'kicked' })
    for (const conn of user) t.same(await conn.closed, { code: 4321, reason: 'kicked' }, 'disconnectUser: closed with the code and reason')
    await roundTrip(other)
    t.pass('another user on the same node stays connected')
  })

  // The welcome went out before the connection's node had subscribed to its user's channel: a
  // command published on another node meanwhile was lost for it.
  t.test('a user command sent right after the welcome reaches the connection on another node', async (t) => {
    const open = clients(t)
    const early = await open(1, 'early-user')
    await on(0).app.rooms.sendToUser('early-user', { type: 'early' })
    t.same(await early.next({ type: 'early' }, 2000), { type: 'early' }, 'sendToUser right after the welcome arrived')
  })

  const cutGroup = 'outages: while the link is cut, and after it is restored'
  if (!backend.canCut || nodes.outage === undefined) {
    t.test(cutGroup, { skip: `${backend.name}: a single process, no link between nodes to cut` }, async () => {})
    return
  }
  const startOutage = nodes.outage
  t.test(cutGroup, async (t) => {
    const outage = await startOutage()
    const open = clients(t, outage)
    const [A, B, C] = outage.servers
    const [plain, history] = await outage.rooms('o-', 'h-o-')
    const list = [await open(0, 'o-0'), await open(1, 'o-1'), await open(2, 'o-2')]
    for (const member of list) { await join(member, plain); await join(member, history) }
    const sender = await open(0, 'o-sender')
    await join(sender, history)
    t.equal((await sender.request({ type: 'message', room: history, text: 'before' })).type, 'ack', 'a history message before the cut')
    for (const member of list) await member.next((m) => m.type === 'chat' && m.text === 'before')
    const dropped = (server: StartedServer): number => server.app.rooms.stats().dropped
    const droppedBefore = outage.servers.map(dropped)

    await outage.cut()
    await A.app.rooms.broadcast(plain, { type: 'cut' })
    t.pass('broadcast() resolves while the link is cut')
    t.same(await list[0].next({ type: 'cut' }), { type: 'cut' }, 'and delivers locally')
    const [refused] = await Promise.all([
      sender.request({ type: 'message', room: history, text: 'refused' }, 'refused'),
      t.rejects(A.app.rooms.broadcast(history, { type: 'refused' }), 'broadcast() to a history room rejects')
    ])
    t.match(refused, { type: 'error', id: 'refused', code: 'unavailable' }, 'a client\'s message to a history room is refused with unavailable')

    await outage.restore()
    // History traffic from A from the restore on: refused until A can order it again, then acked.
    const traffic = { running: true, replies: [] as Array<Promise<any>> }
    const sending = (async () => {
      for (let i = 0; traffic.running; i++) {
        traffic.replies.push(sender.request({ type: 'message', room: history, text: `after ${i}` }))
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()
    // Cross-node delivery resumes by itself, both ways: a probe retried until every member has one.
    for (const from of [A, C]) {
      await eventually(async () => {
        const id = Math.random().toString(36).slice(2)
        await from.app.rooms.broadcast(plain, { type: 'probe', id })
        await new Promise((resolve) => setTimeout(resolve, 100))
        return list.every((m) => m.received.some((f) => f?.type === 'probe' && f.id === id)) ? true : undefined
      }, 'cross-node delivery to resume', 20_000, 0)
    }
    t.pass('cross-node delivery works again, both ways')
    for (const [i, member] of list.entries()) {
      if (i === 0 || member.received.some((m) => m?.type === 'cut')) continue
      const counted = dropped(A) - droppedBefore[0] + dropped(outage.servers[i]) - droppedBefore[i]
      t.ok(counted >= 1, `the broadcast that did not reach node ${i} is counted in dropped (${counted})`)
    }

    // B misses part of the history room's flow: its receiving connection is cut again and again
    // for 300 ms while A publishes. B reads the gap back from the history.
    await until(() => chatsIn(list[1], history).some((m) => m.text.startsWith('after ')), 10_000, 'B to get the history traffic')
    let cuts = 0
    const cutUntil = Date.now() + 300
    while (Date.now() < cutUntil) {
      if (await outage.cutReceiver(B, history)) cuts++
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    t.ok(cuts >= 1, `B's receiving connection was cut (${cuts} times)`)
    traffic.running = false
    await sending
    const replies = await Promise.all(traffic.replies)
    const accepted = replies.filter((a) => a.type === 'ack').map((a) => a.data.offset as number)
    t.ok(replies.every((a) => a.type === 'ack' || a.code === 'unavailable'), `each message after the restore acked or refused with unavailable (${accepted.length} of ${replies.length} acked)`)
    const last = await eventually(async () => {
      const ack = await sender.request({ type: 'message', room: history, text: 'last' })
      return ack.type === 'ack' ? ack.data.offset as number : undefined
    }, 'the history room to take messages again')
    for (const member of list) {
      await until(() => chatsIn(member, history).some((m) => m.text === 'last'), 20_000, `${userOf(member)} to get the last message`)
      const offsets = chatsIn(member, history).map((m) => m.offset)
      t.same(offsets, range(1, last), `${userOf(member)}: offsets 1..${last}, once each, in order: no gap left`)
      t.ok(accepted.every((o) => offsets.includes(o)), `${userOf(member)}: every acked message`)
      t.notOk(framesOf(member, (m) => m.text === 'refused' || m.type === 'refused').length > 0, `${userOf(member)}: neither refused publication`)
    }
    await membersOn(outage.servers, plain, list.map(userOf).sort())
    t.pass('members() is whole again on every node')
  })
}

/** members() of `room` on each of `servers`, once each lists exactly `expected` (sorted user ids). */
async function membersOn (servers: StartedServer[], room: string, expected: string[]): Promise<void> {
  for (const [i, server] of servers.entries()) {
    await eventually(async () => {
      const list = ids(await server.app.rooms.members(room))
      return JSON.stringify(list) === JSON.stringify(expected) ? true : undefined
    }, `members(${room}) on node ${i} to be ${expected.join(', ')}`)
  }
}
