// Issue 15: a client that sends `join` and closes at once (its FIN right behind the frame) must
// leave no member behind on the other nodes, and nobody may hear a `leave` for a join they never
// saw. The join's subscribe is asynchronous with Redis; before the fix its presence write landed
// after the disconnect had already removed the member.
import t from 'tap'
import { join } from '../helpers.js'
import { RawClient } from '../raw-client.js'
import { deleteKeys, SHARED_REDIS, uniquePrefix } from '../fixtures/redis-helpers.js'
import { RedisNodes } from '../fixtures/redis-nodes.js'

const prefix = uniquePrefix('ghost')
const group = new RedisNodes(t, SHARED_REDIS, prefix, async () => { await deleteKeys(SHARED_REDIS, prefix) })
const watchers = group.clients // opened on B, one per room

const A = await group.node()
const B = await group.node()
const ROOMS = 20
const ROUNDS = 5

t.test('join then FIN at once: no ghost in members(), no leave without a join', async (t) => {
  const rooms = Array.from({ length: ROOMS }, (_, i) => `ghost-${i}`)
  // A watcher per room on B, so every join and leave that crosses nodes is seen.
  for (const room of rooms) {
    const watcher = await group.open(B, `watcher-${room}`)
    await join(watcher, room)
  }
  for (let round = 0; round < ROUNDS; round++) {
    // Each ghost joins a room nobody on A is in yet, so A's join has to subscribe first (async).
    await Promise.all(rooms.map(async (room) => {
      const ghost = await RawClient.connect(A.port, `/ws?token=ghost-${round}-${room}`)
      ghost.sendText(JSON.stringify({ type: 'join', room, id: 1 }))
      ghost.socket.end()
      await ghost.ended
    }))
    // A's bookkeeping is done once its sockets are gone.
    for (let i = 0; i < 100 && A.app.rooms.stats().connections > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal(A.app.rooms.stats().connections, 0, `round ${round}: A has no connection left`)
  }
  // Give stray presence writes (the fault) time to land: far below presenceTtl (10 s), far above a Redis round trip.
  await new Promise((resolve) => setTimeout(resolve, 500))
  let ghosts = 0
  for (const room of rooms) {
    const members = await B.app.rooms.members(room)
    ghosts += members.filter((m) => m.user.id.startsWith('ghost-')).length
  }
  t.equal(ghosts, 0, 'no ghost member is listed on the other node')
  for (const [i, watcher] of watchers.entries()) {
    const joined = new Set<string>()
    let unannounced = 0
    for (const m of watcher.received) {
      if (m?.type !== 'system') continue
      if (m.event === 'join') joined.add(m.user.id)
      if (m.event === 'leave' && !joined.has(m.user.id)) unannounced++
    }
    t.equal(unannounced, 0, `${rooms[i]}: no leave for a join the watcher never saw`)
  }
  t.same(A.app.rooms.rooms(), [], 'A keeps no room')
})
