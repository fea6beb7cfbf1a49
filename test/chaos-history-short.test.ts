// History chaos (test/chaos/history-chaos.ts), short: three nodes, 24 clients in three history
// rooms, connections cut every 150 ms and resumed on a random node, Redis killed and restarted
// once, and the nodes' publishing connections cut by Redis 4 times. `npm run chaos` runs the long
// version.
import t from 'tap'
import { runHistoryChaos } from './chaos/history-chaos.js'

t.test('history chaos, short: every message seen once, in order, by every member; nothing lost unreported', async (t) => {
  const result = await runHistoryChaos({
    durationMs: Number(process.env.CHAOS_SHORT_MS ?? 12_000),
    clients: 24,
    nodes: 3,
    rooms: 3,
    redisRestarts: 1,
    publisherCuts: 4,
    seed: Number(process.env.CHAOS_SEED ?? 1),
    log: (line) => t.comment(line)
  })
  const { problems, ...figures } = result
  t.comment(JSON.stringify(figures))
  t.same(problems, [], 'no problem found')
  t.equal(result.redisRestarts, 1, 'Redis was killed and restarted')
  t.ok(result.publisherCuts >= 1, `nodes' publishing connections were cut by Redis (${result.publisherCuts})`)
  t.ok(result.cuts >= 40 && result.rejoins.recovered >= 20, `connections were cut (${result.cuts}) and recovered (${result.rejoins.recovered})`)
  t.ok(result.recoveredMessages > 0, `recovery delivered messages (${result.recoveredMessages})`)
  t.ok(result.refused + result.broadcasts.rejected > 0, `publishing was refused while Redis was gone (${result.refused} messages, ${result.broadcasts.rejected} broadcasts)`)
  // Redis keeps its data across the restart (fsync always): nothing may be reported lost.
  t.equal(result.rejoins.notRecovered, 0, 'every rejoin recovered')
  t.equal(result.reportedLost, 0, 'nothing reported lost')
  // Enough traffic that the checks mean something, on a loaded machine too (an idle one checks 30,000–40,000).
  t.ok(result.deliveriesChecked > 2_000, `deliveries were checked (${result.deliveriesChecked})`)
})
