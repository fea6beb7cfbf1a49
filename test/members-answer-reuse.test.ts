// The `members` request is the dearest frame a member can send: a 45-byte request, an answer of up
// to membersLimit members, and with Redis two scripts that scan the room. A room's answer is reused
// on the node for a moment, so members asking at about the same time cost one lookup, and any join
// or leave the node hears of drops it (the next request looks again).
import t from 'tap'
import { memoryAdapter } from '../lib/index.js'
import { join, serve } from './helpers.js'
import type { RoomsAdapter } from '../types/index.js'

/** The in-memory adapter, counting the member lookups made through it. */
function countingAdapter (): RoomsAdapter & { lookups: number } {
  const inner = memoryAdapter()
  const counting = {
    ...inner,
    lookups: 0,
    members (room: string, limit?: number) {
      counting.lookups++
      return inner.members(room, limit)
    }
  }
  return counting
}

const connectionIds = (answer: any): string[] => answer.data.members.map((m: any) => m.connectionId).sort()

t.test('members asking at about the same time cost one lookup; a join or leave makes the next one look again', async (t) => {
  const adapter = countingAdapter()
  const s = await serve(t, { adapter })
  const [a, b, c] = [await s.open(), await s.open(), await s.open()]
  await join(a, 'r')
  await join(b, 'r')
  const both = [a.welcome.connectionId, b.welcome.connectionId].sort()

  const before = adapter.lookups
  const answers = await Promise.all([a.request({ type: 'members', room: 'r' }), b.request({ type: 'members', room: 'r' })])
  t.same(answers.map(connectionIds), [both, both], 'both members get the two members')
  t.same(answers.map((answer) => answer.data.size), [2, 2], 'and the size')
  t.equal(adapter.lookups - before, 1, 'one lookup for the two requests')

  await join(c, 'r')
  const afterJoin = await b.request({ type: 'members', room: 'r' })
  t.same(connectionIds(afterJoin), [...both, c.welcome.connectionId].sort(), 'after a join the answer lists the joiner')
  t.equal(adapter.lookups - before, 2, 'looked up again')

  t.equal((await a.request({ type: 'leave', room: 'r' })).type, 'ack')
  const afterLeave = await c.request({ type: 'members', room: 'r' })
  t.same(connectionIds(afterLeave), [b.welcome.connectionId, c.welcome.connectionId].sort(), 'after a leave the answer no longer lists the leaver')
  t.equal(adapter.lookups - before, 3, 'looked up again')

  await c.close()
  const afterClose = await b.request({ type: 'members', room: 'r' })
  t.same(connectionIds(afterClose), [b.welcome.connectionId], 'after a member disconnects the answer no longer lists it')

  const counted = adapter.lookups
  await s.app.rooms.members('r')
  await s.app.rooms.members('r')
  t.equal(adapter.lookups - counted, 2, 'fastify.rooms.members() always looks up')
})
