// The churn soak (test/soak/run.ts), short: about ten seconds of sessions connecting, joining,
// chatting, leaving and dropping, then the same end checks as `npm run soak` — every required
// delivery exactly once and in order, no room, connection, timer or listener left, heap back
// within bounds after GC.
import t from 'tap'
import { runSoak } from './soak/run.js'

t.test('churn soak, short', async (t) => {
  const result = await runSoak({
    durationMs: Number(process.env.SOAK_SHORT_MS ?? 8000),
    concurrency: 120,
    rooms: 16,
    seed: Number(process.env.SOAK_SEED ?? 1),
    log: (line) => t.comment(line)
  })
  const { problems, ...figures } = result
  t.comment(JSON.stringify(figures))
  t.same(problems, [], 'no problem found')
  t.ok(result.sessions >= 500, `hundreds of sessions went through (${result.sessions})`)
  t.ok(result.dropped > 0 && result.graceful > 0, 'both clean closes and abrupt drops happened')
  t.ok(result.requiredDeliveries > 0, `deliveries were checked (${result.requiredDeliveries})`)
  t.equal(result.missing, 0, 'no required delivery is missing')
  t.equal(result.duplicates, 0, 'no delivery is duplicated')
  t.equal(result.outOfOrder, 0, 'no delivery is out of order')
  t.equal(result.leftover.rooms, 0, 'no room left')
  t.equal(result.leftover.connections, 0, 'no connection left')
  t.same(result.leftover.resources, {}, 'no timer or handle left')
  t.same(result.leftover.listeners, {}, 'no listener left')
})
