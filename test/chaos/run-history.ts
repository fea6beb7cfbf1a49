// `npm run chaos`: the history chaos, long. CHAOS_MS (default 120000), CHAOS_CLIENTS (60),
// CHAOS_NODES (3), CHAOS_ROOMS (4), CHAOS_REDIS_RESTARTS (4), CHAOS_PUBLISHER_CUTS (20),
// CHAOS_SEED (random, printed).
// Exits 1 when a guarantee did not hold.
import { runHistoryChaos } from './history-chaos.js'

const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const result = await runHistoryChaos({
  durationMs: Number(process.env.CHAOS_MS ?? 120_000),
  clients: Number(process.env.CHAOS_CLIENTS ?? 60),
  nodes: Number(process.env.CHAOS_NODES ?? 3),
  rooms: Number(process.env.CHAOS_ROOMS ?? 4),
  redisRestarts: Number(process.env.CHAOS_REDIS_RESTARTS ?? 4),
  publisherCuts: Number(process.env.CHAOS_PUBLISHER_CUTS ?? 20),
  seed,
  log: (line) => process.stdout.write(`# ${line}\n`)
})
const { problems, ...figures } = result
process.stdout.write(JSON.stringify({ seed, ...figures }, null, 2) + '\n')
const lost = result.reportedLost > 0 ? [`${result.reportedLost} messages reported lost (Redis keeps its data here: none should be)`] : []
for (const problem of [...problems, ...lost]) process.stdout.write(`PROBLEM: ${problem}\n`)
process.exitCode = problems.length + lost.length === 0 ? 0 : 1
