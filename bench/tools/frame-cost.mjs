// CPU per handled client frame with metrics and tracing off and on, without sockets: the frame
// handler of a real node (built dist/), fed `message` frames from a stub connection in a tight
// loop, measured with process.cpuUsage(). Each configuration runs in its own process (tracing
// and hiding @opentelemetry/api are process-wide), the configurations alternate, and the median
// of the rounds is shown. This isolates the per-frame cost the fan-out bench (scenarios 72-75)
// measures end to end, where it is a small part of each delivery and hidden by other load.
//
//   npm run build && node bench/tools/frame-cost.mjs [--frames N] [--rounds N]
import { execFileSync } from 'node:child_process'
import { observabilityFromEnv } from '../lib/observability-env.mjs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const CONFIGS = {
  'api not installed': { BENCH_HIDE_OTEL: '1' },
  'api installed, no provider': {},
  'metrics on': { BENCH_METRICS: '1' },
  'tracing on (provider registered)': { BENCH_TRACING: '1' },
  'metrics and tracing on': { BENCH_METRICS: '1', BENCH_TRACING: '1' }
}

const { values } = parseArgs({ options: { frames: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' }, child: { type: 'boolean', default: false } } })

if (values.child) {
  process.stdout.write(String(await measure(Number(values.frames))))
} else {
  const results = Object.fromEntries(Object.keys(CONFIGS).map((name) => [name, []]))
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [name, env] of Object.entries(CONFIGS)) {
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', '--frames', values.frames], { env: { ...process.env, ...env }, encoding: 'utf8' })
      results[name].push(Number(out))
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const base = median(results['api not installed'])
  console.log('| configuration | CPU per frame (µs, median) | vs api not installed |')
  console.log('|---|---|---|')
  for (const [name, xs] of Object.entries(results)) {
    console.log(`| ${name} | ${median(xs).toFixed(2)} | ${(median(xs) / base).toFixed(2)}× |`)
  }
}

/** µs of CPU per `message` frame (a room with no other member: parse, checks, publish, ack). */
async function measure (frames) {
  await observabilityFromEnv()
  const dist = new URL('../../dist/esm/', import.meta.url)
  const { normaliseOptions } = await import(new URL('options.js', dist))
  const { createNode } = await import(new URL('node.js', dist))
  const { startObservability } = await import(new URL('observability.js', dist))
  const { createFrameHandler } = await import(new URL('frame-handler.js', dist))
  let metrics
  if (process.env.BENCH_METRICS === '1') metrics = { registry: new (await import('prom-client')).Registry() }
  const params = normaliseOptions({ rateLimit: false, ...(metrics ? { metrics } : {}) })
  const log = { error () {}, warn () {}, info () {}, debug () {}, trace () {}, fatal () {}, child () { return log } }
  const node = createNode(params, log)
  const observability = await startObservability(node)
  await node.start()
  const { onFrame } = createFrameHandler(node.commands, node.counters, observability.instrument)
  // The connection as the frame path uses it: in room `r` alone, replies go nowhere.
  const conn = {
    id: 'c1',
    userJson: '{"id":"u1"}',
    rooms: new Set(['r']),
    grants: null,
    open: true,
    closeQueued: false,
    backlog: null,
    backlogBytes: 0,
    lastSeen: 0,
    spoke: false,
    windowStart: 0,
    framesInWindow: 0,
    sendPayload () {},
    close () {}
  }
  const frame = Buffer.from(JSON.stringify({ type: 'message', room: 'r', text: 'hello', id: 1 }))
  for (let i = 0; i < 20_000; i++) onFrame(conn, frame, false) // warm-up
  const start = process.cpuUsage()
  for (let i = 0; i < frames; i++) onFrame(conn, frame, false)
  const used = process.cpuUsage(start)
  observability.close()
  await node.stop()
  return (used.user + used.system) / frames
}
