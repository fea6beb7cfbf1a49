// CONTRACT §12 under topology changes, on a Redis Cluster this test starts (three masters, one
// replica each), with three plugin nodes and traffic running throughout:
// - a slot migrated (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE) while its room
//   is in use, then
// - a master killed (SIGKILL) and its replica promoted.
// In a plain room every receiver gets each message at most once, in order, and what it missed is
// counted in `dropped` (by the sender, or by the receiver's node when it saw the sender's seq jump):
//   missed(receiver) <= dropped(sender's node) + dropped(receiver's node)
// In a history room nothing is lost at all: every member ends with exactly the offsets whose
// publication was accepted, each once, in order (gaps are read back from the room's stream).
import t, { type Test } from 'tap'
import { eventually, join, type StartedServer } from './helpers.js'
import { slotOf } from './fixtures/redis-cluster-server.js'
import { startClusterPlugins, type Client } from './fixtures/cluster-plugins.js'

const { cluster, prefix, keys, nodes, open } = await startClusterPlugins(t, 'cluster-faults', {
  history: { rooms: (room) => room.startsWith('h-'), size: 10_000 }
})
const [A, B, C] = nodes
const slotOfRoom = (room: string): number => slotOf(keys.roomChannel(room))

/** A room name starting with `stem` whose slot the master on `port` serves. */
async function roomOn (stem: string, port: number): Promise<string> {
  for (let i = 0; ; i++) if (await cluster.masterOf(slotOfRoom(`${stem}${i}`)) === port) return `${stem}${i}`
}

const dropped = (server: StartedServer): number => server.app.rooms.stats().dropped

/**
 * Traffic from A into a plain room and a history room, one publication of each every 10 ms, until
 * `stop()`; then a marker per room, retried until every receiver has it (the subscriptions are back).
 */
function traffic (plain: string, history: string) {
  const state = { running: true }
  let sent = 0
  const accepted: number[] = []
  let rejected = 0
  const pending: Array<Promise<void>> = []
  const loop = (async () => {
    while (state.running) {
      const n = ++sent
      await A.app.rooms.broadcast(plain, { type: 'tick', n })
      pending.push(A.app.rooms.broadcast(history, { type: 'tick', n }).then(() => { accepted.push(n) }, () => { rejected++ }))
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  return {
    async stop () {
      state.running = false
      await loop
      await Promise.all(pending)
      return { sent, accepted, rejected }
    }
  }
}

async function check (t: Test, members: Client[], plain: string, history: string, run: ReturnType<typeof traffic>, before: number[]): Promise<void> {
  const { sent, accepted, rejected } = await run.stop()
  t.ok(sent > 50, `traffic ran through the change (${sent} sent, ${rejected} history publications refused)`)
  // Markers: the subscriptions are back everywhere.
  await eventually(async () => {
    const id = Math.random().toString(36).slice(2)
    await A.app.rooms.broadcast(plain, { type: 'marker', id })
    await new Promise((resolve) => setTimeout(resolve, 200))
    return members.every((m) => m.received.some((f) => f.type === 'marker' && f.id === id)) ? true : undefined
  }, 'a marker through every subscription', 20_000, 0)

  const droppedA = dropped(A) - before[0]
  const receivers = [[members[1], dropped(B) - before[1]], [members[2], dropped(C) - before[2]]] as const
  for (const [member, droppedThere] of receivers) {
    const ticks = member.received.filter((m) => m.type === 'tick' && m.room === undefined && m.offset === undefined).map((m) => m.n as number)
    const inOrder = ticks.every((n, i) => i === 0 || n > ticks[i - 1])
    t.ok(inOrder, `${member.welcome.user.id}: plain messages in order, none twice`)
    const missed = sent - ticks.length
    t.ok(missed <= droppedA + droppedThere, `${member.welcome.user.id}: missed ${missed} <= dropped ${droppedA} (A) + ${droppedThere} (its node)`)
  }

  // History: every member, the publisher's node too, ends with exactly the accepted messages.
  const wanted = Array.from({ length: accepted.length }, (_, i) => i + 1)
  for (const member of members) {
    const offsets = await eventually(() => {
      const got = member.received.filter((m) => m.type === 'tick' && m.offset !== undefined).map((m) => m.offset as number)
      return got.length >= wanted.length ? got : undefined
    }, `${member.welcome.user.id}: every accepted history message`, 20_000)
    t.same(offsets, wanted, `${member.welcome.user.id}: offsets 1..${wanted.length}, once each, in order`)
    const values = member.received.filter((m) => m.type === 'tick' && m.offset !== undefined).map((m) => m.n as number)
    t.same(values.sort((x, y) => x - y), [...accepted].sort((x, y) => x - y), `${member.welcome.user.id}: exactly the accepted messages`)
  }
  const page = await B.app.rooms.history(history)
  t.same(page.messages.map((m: any) => m.n).sort((x: number, y: number) => x - y), [...accepted].sort((x, y) => x - y),
    'the stream holds exactly the accepted messages')
}

/** A plain room and a history room on the master at `port`, joined by one member on each node. */
async function roomsInUse (stem: string, port: number, users: [string, string, string]): Promise<{ plain: string, history: string, members: Client[] }> {
  const plain = await roomOn(stem, port)
  const history = await roomOn(`h-${stem}`, port)
  const members = [await open(A, users[0]), await open(B, users[1]), await open(C, users[2])]
  for (const member of members) {
    await join(member, plain)
    await join(member, history)
  }
  return { plain, history, members }
}

t.test('a slot migrated while its rooms are in use', async (t) => {
  const masters = await cluster.masterPorts()
  const { plain, history, members } = await roomsInUse('mig-', masters[0], ['ma', 'mb', 'mc'])
  const before = [dropped(A), dropped(B), dropped(C)]
  const run = traffic(plain, history)
  await new Promise((resolve) => setTimeout(resolve, 300))
  await cluster.migrateSlot(slotOfRoom(plain), masters[1])
  await cluster.migrateSlot(slotOfRoom(history), masters[2])
  t.equal(await cluster.masterOf(slotOfRoom(plain)), masters[1], 'the plain room\'s slot moved')
  t.equal(await cluster.masterOf(slotOfRoom(history)), masters[2], 'the history room\'s slot moved')
  await new Promise((resolve) => setTimeout(resolve, 500))
  await check(t, members, plain, history, run, before)
  t.ok((await cluster.command(masters[1], 'PUBSUB', 'SHARDCHANNELS', `${prefix}:*`) as string[]).includes(keys.roomChannel(plain)),
    'the nodes subscribed at the new master')
  t.notOk((await cluster.command(masters[0], 'PUBSUB', 'SHARDCHANNELS', `${prefix}:*`) as string[]).includes(keys.roomChannel(plain)),
    'and no longer at the old one')
  for (const member of members) member.ws.terminate()
})

t.test('a master killed (SIGKILL) and its replica promoted in the middle of traffic', async (t) => {
  // A master that holds broadcastAll subscriptions (plain SUBSCRIBE) too: they are lost with it.
  const victim = await eventually(async () => {
    for (const port of await cluster.masterPorts()) {
      const [, count] = await cluster.command(port, 'PUBSUB', 'NUMSUB', keys.all) as [string, number]
      if (Number(count) > 0) return port
    }
    return undefined
  }, 'a master holding broadcastAll subscriptions')
  const { plain, history, members } = await roomsInUse('fo-', victim, ['fa', 'fb', 'fc'])
  const before = [dropped(A), dropped(B), dropped(C)]
  const run = traffic(plain, history)
  await new Promise((resolve) => setTimeout(resolve, 300))
  await cluster.kill(victim)
  const promoted = await cluster.waitPromoted(slotOfRoom(plain), victim)
  t.not(promoted, victim, `replica ${promoted} took over from ${victim}`)
  await new Promise((resolve) => setTimeout(resolve, 500))
  await check(t, members, plain, history, run, before)
  t.ok((await cluster.command(promoted, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:*`) as string[]).includes(keys.roomChannel(plain)),
    'the nodes subscribed at the promoted replica')
  // And broadcastAll reaches every node again: its subscriptions were taken on a live node.
  await eventually(async () => {
    const id = Math.random().toString(36).slice(2)
    await B.app.rooms.broadcastAll({ type: 'notice', id })
    await new Promise((resolve) => setTimeout(resolve, 200))
    return members.every((m) => m.received.some((f) => f.type === 'notice' && f.id === id)) ? true : undefined
  }, 'a broadcastAll reaching every node after the failover', 20_000, 0)
  t.pass('broadcastAll reaches every node after the failover')
})
