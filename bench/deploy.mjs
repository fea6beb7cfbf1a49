// The deploy scenario: two nodes over Redis (A and B), clients spread over 100 history rooms with
// messages flowing, then A stops and its clients move to B through a "balancer" that sends new
// connections to B from that moment. A stops four ways: fastify.close() (every client gets 1001
// at once) or a drain over --over-ms, each with clients that reconnect at once (restartJitterMs 0)
// or with the client's restart jitter (--jitter-ms). Reported per variant: time until every client
// is back and recovered, peak upgrades per second and peak event-loop delay on B, Redis commands
// per second at the peak (the whole Redis server's, so other users of it count too), messages lost
// and duplicated. An SVG plots B's connections and event-loop delay over time.
//
//   node bench/deploy.mjs --clients 8000 --workers 4          # needs a built dist/ (npm run build)
//   node bench/deploy.mjs --clients 1000 --variants close,drain-jitter --over-ms 10000 --jitter-ms 5000
//   options: --redis URL (redis://127.0.0.1:6379) --rooms 100 --rate 200 (messages/s) --out FILE.json --svg FILE.svg
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/[ =]/)))
const CLIENTS = Number(args.clients ?? 1000)
const WORKERS = Number(args.workers ?? 2)
const ROOMS = Number(args.rooms ?? 100)
const RATE = Number(args.rate ?? 200)
const OVER_MS = Number(args['over-ms'] ?? 10_000)
const JITTER_MS = Number(args['jitter-ms'] ?? 5000)
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379'
const ALL = {
  close: { stop: {}, restartJitterMs: 0 },
  'close-jitter': { stop: {}, restartJitterMs: JITTER_MS },
  drain: { stop: { overMs: OVER_MS }, restartJitterMs: 0 },
  'drain-jitter': { stop: { overMs: OVER_MS }, restartJitterMs: JITTER_MS }
}
const VARIANTS = (args.variants ?? Object.keys(ALL).join(',')).split(',')

const children = new Set()
process.on('exit', () => { for (const child of children) try { child.kill('SIGKILL') } catch {} })
process.on('SIGINT', () => process.exit(130))

/** Fork a script with IPC; `request` sends a command and resolves with the reply carrying its rid. */
function start (script, env = {}) {
  const child = fork(fileURLToPath(new URL(script, import.meta.url)), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  const waiting = new Map()
  let rid = 0
  const ready = new Promise((resolve) => {
    child.on('message', (msg) => {
      if (msg.ready !== undefined) resolve(msg)
      else if (msg.rid !== undefined) { waiting.get(msg.rid)?.(msg); waiting.delete(msg.rid) } else child.emit('report', msg)
    })
  })
  const request = (cmd) => new Promise((resolve) => { const id = ++rid; waiting.set(id, resolve); child.send({ ...cmd, rid: id }) })
  return { child, ready, request }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The most events in any 1 s window of the timestamps. */
function peakPerSecond (times) {
  const sorted = times.filter((t) => t > 0).sort((a, b) => a - b)
  let best = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= 1000) j++
    best = Math.max(best, i - j + 1)
  }
  return best
}

async function runVariant (name) {
  const variant = ALL[name]
  const prefix = `bench-deploy-${randomBytes(4).toString('hex')}`
  const env = { BENCH_REDIS_URL: REDIS_URL, BENCH_REDIS_PREFIX: prefix }
  const A = start('./deploy/node.mjs', env)
  const B = start('./deploy/node.mjs', env)
  const [a, b] = [await A.ready, await B.ready]
  const samplesB = []
  B.child.on('report', (msg) => { if (msg.sample) samplesB.push(msg.sample) })
  const workers = Array.from({ length: WORKERS }, () => start('./deploy/clients.mjs'))
  for (const w of workers) await w.ready
  const share = Math.ceil(CLIENTS / WORKERS)
  await Promise.all(workers.map((w, i) => w.request({ cmd: 'open', port: a.ready, from: i * share, count: Math.max(0, Math.min(share, CLIENTS - i * share)), rooms: ROOMS, restartJitterMs: variant.restartJitterMs })))
  B.child.send({ cmd: 'publish', rate: RATE, rooms: ROOMS })

  // Redis: total commands processed, sampled every 250 ms.
  const redis = new Redis(REDIS_URL)
  const redisSamples = []
  const redisTimer = setInterval(async () => {
    const info = await redis.info('stats').catch(() => '')
    const match = /total_commands_processed:(\d+)/.exec(info)
    if (match) redisSamples.push({ t: Date.now(), total: Number(match[1]) })
  }, 250)

  await sleep(1500)
  const t0 = Date.now()
  await Promise.all(workers.map((w) => w.request({ cmd: 'sendTo', port: b.ready })))
  const stopped = A.request({ cmd: 'stop', ...variant.stop })
  const deadline = t0 + (variant.stop.overMs ?? 0) + variant.restartJitterMs + 60_000
  for (;;) {
    const states = await Promise.all(workers.map((w) => w.request({ cmd: 'status' })))
    if (states.every((s) => s.recovered === s.total)) break
    if (Date.now() > deadline) { console.error(`${name}: not every client recovered in time`); break }
    await sleep(250)
  }
  const { tookMs: stopMs } = await stopped
  await sleep(1000)
  const { sent } = await B.request({ cmd: 'stopPublish' })
  await sleep(2000)
  clearInterval(redisTimer)
  const reports = await Promise.all(workers.map((w) => w.request({ cmd: 'report', sent })))
  const all = (key) => reports.flatMap((r) => r[key])
  const reopens = all('reopens').filter((t) => t > 0)
  const recoveries = all('recoveries').filter((t) => t > 0)
  const window = samplesB.filter((s) => s.t >= t0 - 1000)
  let redisPeak = 0
  for (let i = 0; i < redisSamples.length; i++) {
    const j = redisSamples.findIndex((s) => s.t >= redisSamples[i].t - 1000)
    if (redisSamples[i].t >= t0 && j < i) redisPeak = Math.max(redisPeak, (redisSamples[i].total - redisSamples[j].total) * 1000 / (redisSamples[i].t - redisSamples[j].t))
  }
  // Upgrades B accepted, per 1 s window (B counts them; the samples come every 100 ms).
  let upgradePeak = 0
  for (let i = 0; i < window.length; i++) {
    const j = window.findIndex((s) => s.t >= window[i].t - 1000)
    if (j < i) upgradePeak = Math.max(upgradePeak, Math.round((window[i].upgrades - window[j].upgrades) * 1000 / (window[i].t - window[j].t)))
  }
  const moving = window.filter((s) => s.t >= t0 && s.t <= Math.max(...recoveries)).map((s) => s.eldMs).sort((x, y) => x - y)
  const result = {
    variant: name,
    clients: CLIENTS,
    overMs: variant.stop.overMs ?? 0,
    restartJitterMs: variant.restartJitterMs,
    stopMs,
    allBackMs: Math.max(...recoveries) - t0,
    reconnectSpreadMs: Math.max(...reopens) - Math.min(...reopens),
    peakUpgradesPerSecond: upgradePeak,
    peakReopensPerSecond: peakPerSecond(reopens),
    peakEventLoopDelayMs: Math.round(Math.max(...moving)),
    p90EventLoopDelayMs: Math.round(moving[Math.floor(moving.length * 0.9)] ?? 0),
    peakRedisCommandsPerSecond: Math.round(redisPeak),
    recovered: reports.reduce((sum, r) => sum + r.recoveredOk, 0),
    lost: reports.reduce((sum, r) => sum + r.lost, 0),
    duplicated: reports.reduce((sum, r) => sum + r.duplicated, 0),
    messagesReceived: reports.reduce((sum, r) => sum + r.received, 0),
    closeCodes: [...new Set(all('codes'))],
    timeline: window.map((s) => ({ t: s.t - t0, connections: s.connections, upgrades: s.upgrades, eldMs: Math.round(s.eldMs * 10) / 10 }))
  }
  redis.disconnect()
  for (const w of workers) w.child.send({ cmd: 'exit' })
  B.child.send({ cmd: 'exit' })
  await sleep(500)
  const cleanup = new Redis(REDIS_URL)
  let cursor = '0'
  do {
    const [next, keys] = await cleanup.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    if (keys.length > 0) await cleanup.del(...keys)
    cursor = next
  } while (cursor !== '0')
  cleanup.disconnect()
  return result
}

/** Two panels (B's connections, B's event-loop delay) with a line per variant. */
function svg (results) {
  const W = 760
  const H = 220
  const colors = ['#d62728', '#ff7f0e', '#1f77b4', '#2ca02c']
  const tMax = Math.max(...results.flatMap((r) => r.timeline.map((s) => s.t)))
  const tMin = -1000
  const panel = (y0, title, value, max, unit) => {
    const x = (t) => 60 + (t - tMin) / (tMax - tMin) * (W - 80)
    const y = (v) => y0 + H - 30 - v / max * (H - 60)
    let out = `<text x="60" y="${y0 + 18}" font-size="13" font-weight="bold">${title}</text>`
    out += `<line x1="60" y1="${y(0)}" x2="${W - 20}" y2="${y(0)}" stroke="#999"/><line x1="60" y1="${y(0)}" x2="60" y2="${y(max)}" stroke="#999"/>`
    out += `<text x="55" y="${y(max) + 4}" font-size="10" text-anchor="end">${Math.round(max)}${unit}</text><text x="55" y="${y(0) + 4}" font-size="10" text-anchor="end">0</text>`
    for (let s = 0; s <= tMax / 1000; s += 5) out += `<text x="${x(s * 1000)}" y="${y(0) + 14}" font-size="10" text-anchor="middle">${s}s</text>`
    results.forEach((r, i) => {
      const points = r.timeline.map((s) => `${x(s.t).toFixed(1)},${y(Math.min(max, value(s))).toFixed(1)}`).join(' ')
      out += `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.5" points="${points}"/>`
    })
    return out
  }
  const maxConn = Math.max(...results.flatMap((r) => r.timeline.map((s) => s.connections)))
  const maxEld = Math.max(...results.flatMap((r) => r.timeline.map((s) => s.eldMs)))
  let body = panel(0, 'Connections on node B (A stops at 0 s)', (s) => s.connections, maxConn, '')
  body += panel(H, 'Worst event-loop delay on node B per 100 ms', (s) => s.eldMs, maxEld, ' ms')
  results.forEach((r, i) => {
    body += `<rect x="${70 + i * 170}" y="${2 * H + 8}" width="12" height="12" fill="${colors[i % colors.length]}"/><text x="${86 + i * 170}" y="${2 * H + 18}" font-size="12">${r.variant}</text>`
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 30}" font-family="sans-serif" style="background:#fff">${body}</svg>\n`
}

const results = []
for (const name of VARIANTS) {
  if (!ALL[name]) throw new Error(`unknown variant ${name} (known: ${Object.keys(ALL).join(', ')})`)
  process.stderr.write(`${name}: ${CLIENTS} clients ...\n`)
  results.push(await runVariant(name))
}
const columns = ['variant', 'overMs', 'restartJitterMs', 'stopMs', 'allBackMs', 'reconnectSpreadMs', 'peakUpgradesPerSecond', 'peakEventLoopDelayMs', 'p90EventLoopDelayMs', 'peakRedisCommandsPerSecond', 'recovered', 'lost', 'duplicated']
console.log(`| ${columns.join(' | ')} |\n|${columns.map(() => '---').join('|')}|`)
for (const r of results) console.log(`| ${columns.map((c) => r[c]).join(' | ')} |`)
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2))
if (args.svg) writeFileSync(args.svg, svg(results))
process.exit(0)
