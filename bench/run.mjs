// `npm run bench`: the plugin against the tutorial baseline, same load generator, same run.
// Every scenario in bench/scenarios/ runs in rounds, alternating which side goes first, with
// fresh server and generator processes each time; the table shows medians and the ratio
// plugin/baseline, and which side limited each figure (from CPU use during the measurement).
//
//   node bench/run.mjs [--quick] [--rounds N] [--scenario a,b] [--workers N]
//                      [--measure-ms N] [--window N] [--publishers N] [--plugin-server baseline|<path>]
//                      [--server-args="--cpu-prof --cpu-prof-dir=DIR"] [--loadgen-args="..."]
//                      [--profile DIR] [--out file.json] [--chart file.svg]
//
// --quiet-wait S (default 20, 5 with --quick): before each run, wait up to S seconds for other processes on
// the machine to use less than a third of a core (0: do not wait). The bench shares the
// cores with whatever else runs; the table reports how much CPU others took anyway.
// --nice N runs the servers and generators at that scheduling priority (e.g. --nice=-5 as
// root), so that on a shared machine other jobs take fewer cycles from the measurement.
// --profile DIR writes a CPU profile of the server and of each generator process covering
// exactly the measurement window of every run (summarize with bench/tools/profile-summary.mjs).
// --heap-snapshots DIR: the memory scenario writes the server's heap before and after the
// clients connect (compare with bench/tools/heap-diff.mjs).
//
// Environment: BENCH_QUICK=1 is --quick; BENCH_ROUNDS, BENCH_WORKERS likewise.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { killAll, setSchedulingPriority, startServer, startWorkers, stopWorkers } from './lib/procs.mjs'
import { SATURATED, limitedBy, machineCpu, machinePercent, median, mode, sleep } from './lib/stats.mjs'
import { chartSvg } from './lib/chart.mjs'

const benchDir = dirname(fileURLToPath(import.meta.url))
const root = resolve(benchDir, '..')

// ---- options ------------------------------------------------------------------------

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
    rounds: { type: 'string', default: process.env.BENCH_ROUNDS },
    scenario: { type: 'string' },
    workers: { type: 'string', default: process.env.BENCH_WORKERS },
    'measure-ms': { type: 'string' },
    window: { type: 'string' },
    publishers: { type: 'string' },
    'plugin-server': { type: 'string' },
    'server-args': { type: 'string', default: '' },
    'loadgen-args': { type: 'string', default: '' },
    out: { type: 'string' },
    chart: { type: 'string' },
    profile: { type: 'string' },
    'heap-snapshots': { type: 'string' },
    'quiet-wait': { type: 'string', default: process.env.BENCH_QUIET_WAIT },
    nice: { type: 'string', default: process.env.BENCH_NICE },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n')
  process.exit(0)
}

const cores = os.availableParallelism?.() ?? os.cpus().length
const opts = {
  quick: flags.quick,
  nice: flags.nice === undefined ? null : Number(flags.nice),
  rounds: Number(flags.rounds ?? (flags.quick ? 1 : 3)),
  // One generator process per core: on a small machine the generator shares the cores with
  // the server, and more processes than cores only adds switching.
  workers: Number(flags.workers ?? Math.max(1, cores)),
  measureMs: flags['measure-ms'] ? Number(flags['measure-ms']) : undefined,
  window: flags.window ? Number(flags.window) : undefined,
  // publishers per room share (one-room and the scenarios built on it): default 1 per generator
  publishers: flags.publishers ? Number(flags.publishers) : undefined
}
if (flags.nice !== undefined) setSchedulingPriority(Number(flags.nice))
const outFile = resolve(flags.out ?? join(benchDir, 'results', 'latest.json'))
const chartFile = resolve(flags.chart ?? outFile.replace(/\.json$/, '') + '.svg')

const baselineScript = pathToFileURL(join(benchDir, 'baseline', 'server.mjs'))
let pluginScript = pathToFileURL(join(benchDir, 'servers', 'plugin.mjs'))
if (flags['plugin-server'] === 'baseline') pluginScript = baselineScript
else if (flags['plugin-server']) pluginScript = pathToFileURL(resolve(flags['plugin-server']))
const serverArgs = flags['server-args'].split(' ').filter(Boolean)
const loadgenArgs = flags['loadgen-args'].split(' ').filter(Boolean)

const sides = {
  plugin: { name: 'plugin', script: pluginScript },
  baseline: { name: 'baseline', script: baselineScript },
  // The floor (servers/floor.mjs): a bare `ws` server, run as a third column by the fan-out
  // scenarios that list it in `sides`.
  floor: { name: 'floor', script: pathToFileURL(join(benchDir, 'servers', 'floor.mjs')) }
}

// ---- cleanup: every child is stopped by pid, whatever happens ----------------------------

let interrupted = false
process.on('exit', () => killAll())
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) process.exit(130)
    interrupted = true
    process.stderr.write(`\n${signal}: stopping bench processes\n`)
    killAll()
    process.exit(130)
  })
}

// ---- environment checks -------------------------------------------------------------

function openFileLimit () {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const soft = line.trim().split(/\s+/)[3]
    return soft === 'unlimited' ? Infinity : Number(soft)
  } catch {
    return null
  }
}

function cpuModel () {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'))
    return line.split(':')[1].trim()
  } catch {
    return os.cpus()[0]?.model ?? 'unknown'
  }
}

function gitCommit () {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}

function ensureBuilt () {
  if (pluginScript.href !== pathToFileURL(join(benchDir, 'servers', 'plugin.mjs')).href) return
  if (existsSync(join(root, 'dist', 'esm', 'index.js'))) return
  process.stdout.write('dist/ is missing: running npm run build\n')
  execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' })
}

// ---- scenarios ----------------------------------------------------------------------

async function loadScenarios () {
  const dir = join(benchDir, 'scenarios')
  const files = readdirSync(dir).filter((f) => f.endsWith('.mjs')).sort()
  const list = []
  for (const file of files) {
    const mod = await import(pathToFileURL(join(dir, file)).href)
    const scenario = mod.default
    if (!scenario?.name || typeof scenario.run !== 'function') throw new Error(`bench/scenarios/${file}: default export needs name and run()`)
    list.push({ ...scenario, file })
  }
  if (flags.scenario) {
    const wanted = flags.scenario.split(',').map((s) => s.trim())
    const unknown = wanted.filter((w) => !list.some((s) => s.name === w))
    if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}; have ${list.map((s) => s.name).join(', ')}`)
    return list.filter((s) => wanted.includes(s.name))
  }
  return list
}

/** Wait (at most `seconds`) until the machine is nearly idle; returns the CPU others used last. */
async function waitQuiet (seconds) {
  const deadline = Date.now() + seconds * 1000
  let busy = null
  do {
    const a = machineCpu()
    await sleep(500)
    busy = machinePercent(a, machineCpu(), cores)
    if (busy === null || busy < 33) return busy
  } while (Date.now() < deadline)
  return busy
}

let tokenSeq = 0
const ctx = {
  cores,
  opts,
  log: (msg) => process.stdout.write(`  ${msg}\n`),
  tokenPrefix: () => `b${process.pid}x${++tokenSeq}`,
  // BENCH_REDIS_URL in the runner's environment tells the Redis scenarios which Redis to use; a
  // server gets the Redis adapter only when its scenario passes it on (else one-node columns would too).
  startServer: (side, { env = {}, execArgv = [] } = {}) =>
    startServer(side.script, { env: { BENCH_REDIS_URL: '', ...env }, execArgv: [...serverArgs, ...execArgv], label: `${side.name} server` }),
  startWorkers: (n, options = {}) => startWorkers(n, { ...options, execArgv: [...loadgenArgs, ...(options.execArgv ?? [])] }),
  stopWorkers: (workers) => stopWorkers(workers),
  profileDir: flags.profile ? resolve(flags.profile) : null,
  heapSnapshotDir: flags['heap-snapshots'] ? resolve(flags['heap-snapshots']) : null,
  label: 'run',
  /** With --profile: profile the server and the workers from now until the returned stop() is called. */
  async profile (server, workers) {
    if (this.profileDir === null) return async () => {}
    mkdirSync(this.profileDir, { recursive: true })
    const peers = [['server', server], ...workers.map((w, i) => [`loadgen${i}`, w])]
    await Promise.all(peers.map(([, p]) => p.request('profile-start')))
    return async () => {
      await Promise.all(peers.map(([name, p]) => p.request('profile-stop', { file: join(this.profileDir, `${this.label}-${name}.cpuprofile`) }, 60000)))
    }
  },
  /** Wait until no generator worker has received a frame for 300 ms (at most 60 s). */
  async settle (workers, { quietMs = 300, timeoutMs = 60000 } = {}) {
    const deadline = Date.now() + timeoutMs
    let last = -1
    let quietSince = Date.now()
    while (Date.now() < deadline) {
      const counts = await Promise.all(workers.map((w) => w.request('frames')))
      const total = counts.reduce((a, c) => a + c.frames, 0)
      if (total !== last) {
        last = total
        quietSince = Date.now()
      } else if (Date.now() - quietSince >= quietMs) {
        return true
      }
      await sleep(50)
    }
    return false
  },
  /** Poll the server until it holds `count` connections (at most `timeoutMs`). */
  async waitConnections (server, count, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const usage = await server.usage()
      if (usage.connections === count || Date.now() > deadline) return usage.connections
      await sleep(50)
    }
  }
}

// ---- formatting ---------------------------------------------------------------------

function fmt (value, decimals = 0) {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a'
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
}

function pct (value) {
  return value === null || value === undefined ? '-' : `${Math.round(value)}%`
}

function table (rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)))
  const line = (r) => '| ' + r.map((cell, c) => String(cell).padEnd(widths[c])).join(' | ') + ' |'
  const sep = '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|'
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join('\n')
}

function targetText (t) {
  return t ? `${t.op === '>=' ? '≥' : '≤'} ${t.ratio}×` : ''
}

// ---- main ---------------------------------------------------------------------------

async function main () {
  const scenarios = await loadScenarios()
  const fdLimit = openFileLimit()
  const machine = {
    cpus: cores,
    cpuModel: cpuModel(),
    memoryGB: Math.round(os.totalmem() / 1073741824),
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    openFileLimit: fdLimit,
    loadAverageAtStart: os.loadavg()
  }
  process.stdout.write(`fastify-ws-rooms bench: ${machine.cpus} × ${machine.cpuModel}, node ${machine.node}, ` +
    `${opts.rounds} round(s), ${opts.workers} generator process(es)${opts.quick ? ', quick mode' : ''}` +
    `${opts.nice === null ? '' : `, nice ${opts.nice}`}\n`)
  if (pluginScript.href === baselineScript.href) process.stdout.write('note: --plugin-server baseline, both sides run the baseline (harness check)\n')
  // The server holds every client's socket; a worker holds its share.
  const needed = Math.max(...scenarios.map((s) => { const p = s.params(opts); return p.clients ?? p.receivers ?? 1000 })) + 200
  if (fdLimit !== null && fdLimit < needed) {
    throw new Error(`open file limit is ${fdLimit}, the bench needs about ${needed}: run \`ulimit -n ${needed * 2}\` first`)
  }
  ensureBuilt()

  const results = { date: new Date().toISOString(), commit: gitCommit(), machine, options: { ...opts, pluginServer: relative(root, fileURLToPath(pluginScript)), serverArgs, loadgenArgs }, scenarios: [] }
  for (const scenario of scenarios) {
    const params = scenario.params(opts)
    process.stdout.write(`\n${scenario.title} (${scenario.name})\n`)
    const names = scenario.sides ?? ['plugin', 'baseline']
    const rounds = Object.fromEntries(names.map((n) => [n, []]))
    for (let round = 1; round <= opts.rounds; round++) {
      const order = round % 2 === 1 ? names : [...names].reverse()
      for (const name of order) {
        const quietWait = Number(flags['quiet-wait'] ?? (opts.quick ? 5 : 20))
        const busyBefore = quietWait > 0 && scenario.quiet !== false ? await waitQuiet(quietWait) : null
        const started = Date.now()
        const runCtx = { ...ctx, label: `${scenario.name}-${name}-r${round}` }
        const result = await scenario.run(runCtx, sides[name], params)
        result.limitedBy = result.cpu ? limitedBy(result.cpu, cores) : 'n/a'
        result.seconds = (Date.now() - started) / 1000
        result.machineBusyBefore = busyBefore
        rounds[name].push(result)
        const shown = scenario.metrics.map((m) => `${m.label} ${fmt(result.values[m.key], m.decimals ?? 0)}`).join(', ')
        const others = result.cpu?.others === null || result.cpu?.others === undefined ? '' : `, other processes ${pct(result.cpu.others)}`
        const cpu = result.cpu
          ? ` | server cpu ${pct(result.cpu.server)} loop ${pct(result.cpu.serverElu)}; loadgen cpu ${(result.cpu.workers ?? []).map(pct).join('+')} loop ${(result.cpu.workerElu ?? []).map(pct).join('/')}${others} → ${result.limitedBy}`
          : ''
        process.stdout.write(`  round ${round} ${name.padEnd(8)} ${shown}${cpu}\n`)
        if (result.details?.lost) process.stdout.write(`    warning: ${result.details.lost} deliveries missing after the run\n`)
        if (result.details?.unexpectedCloses && Object.keys(result.details.unexpectedCloses).length > 0) {
          process.stdout.write(`    warning: clients closed by the server: ${JSON.stringify(result.details.unexpectedCloses)}\n`)
        }
        if (result.details?.failed) process.stdout.write(`    warning: ${result.details.failed} clients failed: ${result.details.errors.join('; ')}\n`)
      }
    }
    const summary = {}
    for (const name of names) {
      const list = rounds[name]
      summary[name] = {
        values: Object.fromEntries(scenario.metrics.map((m) => [m.key, median(list.map((r) => r.values[m.key]))])),
        cpuServer: median(list.map((r) => r.cpu?.server)),
        cpuLoadgen: median(list.map((r) => r.cpu?.workers ? r.cpu.workers.reduce((a, b) => a + b, 0) : null)),
        cpuOthers: median(list.map((r) => r.cpu?.others)),
        eluServer: median(list.map((r) => r.cpu?.serverElu)),
        eluLoadgen: median(list.map((r) => r.cpu?.workerElu?.length ? Math.max(...r.cpu.workerElu) : null)),
        limitedBy: mode(list.map((r) => r.limitedBy))
      }
    }
    const metrics = scenario.metrics.map((m) => {
      const a = summary.plugin.values[m.key]
      const b = summary.baseline.values[m.key]
      const ratio = a !== null && b !== null && b !== 0 ? a / b : null
      // round i of each side ran back to back, under much the same load from outside the bench
      const paired = rounds.plugin.map((r, i) => {
        const pa = r.values[m.key]
        const pb = rounds.baseline[i]?.values[m.key]
        return typeof pa === 'number' && typeof pb === 'number' && pb !== 0 ? pa / pb : null
      }).filter((x) => x !== null)
      const met = m.target && ratio !== null ? (m.target.op === '>=' ? ratio >= m.target.ratio : ratio <= m.target.ratio) : null
      if (rounds.floor === undefined) return { ...m, plugin: a, baseline: b, ratio, met, roundRatios: paired }
      const f = summary.floor.values[m.key]
      const floorRatio = a !== null && f !== null && f !== 0 ? a / f : null
      const floorRoundRatios = rounds.plugin.map((r, i) => {
        const pa = r.values[m.key]
        const pf = rounds.floor[i]?.values[m.key]
        return typeof pa === 'number' && typeof pf === 'number' && pf !== 0 ? pa / pf : null
      }).filter((x) => x !== null)
      const floorMet = m.floorTarget && floorRatio !== null ? (m.floorTarget.op === '>=' ? floorRatio >= m.floorTarget.ratio : floorRatio <= m.floorTarget.ratio) : null
      return { ...m, plugin: a, baseline: b, ratio, met, roundRatios: paired, floor: f, floorRatio, floorRoundRatios, floorMet }
    })
    results.scenarios.push({ name: scenario.name, title: scenario.title, params: summarizeParams(params), metrics, summary, rounds })
  }

  results.machine.loadAverageAtEnd = os.loadavg()
  if (ctx.profileDir) process.stdout.write(`\nCPU profiles of each measurement window in ${relative(process.cwd(), ctx.profileDir)}\n`)
  printTable(results)
  mkdirSync(dirname(outFile), { recursive: true })
  writeFileSync(outFile, JSON.stringify(results, null, 2) + '\n')
  writeFileSync(chartFile, chartSvg(results))
  process.stdout.write(`\nresults written to ${relative(process.cwd(), outFile)}, chart to ${relative(process.cwd(), chartFile)}\n`)
}

function summarizeParams (params) {
  const { groups, ...rest } = params
  return groups ? { ...rest, groups: groups.length } : rest
}

function ratioText (ratio) {
  return ratio === null || ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}×`
}

function rangeText (ratios) {
  return ratios?.length > 1 ? `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` : ''
}

function metText (met) {
  return met === null || met === undefined ? '' : met ? 'yes' : 'NO'
}

/** One table row per metric of `scenarios`: the plugin against `other` ('baseline' or 'floor'). */
function comparisonRows (scenarios, other) {
  const key = (name) => other === 'baseline' ? name : other + name[0].toUpperCase() + name.slice(1)
  const rows = [['scenario', 'metric', 'plugin', other, `plugin/${other}`, 'per-round ratios', 'target', 'met']]
  for (const s of scenarios) {
    s.metrics.forEach((m, i) => {
      rows.push([
        i === 0 ? s.title : '',
        m.label,
        fmt(m.plugin, m.decimals ?? 0),
        fmt(m[other], m.decimals ?? 0),
        ratioText(m[key('ratio')]),
        rangeText(m[key('roundRatios')]),
        targetText(m[key('target')]),
        metText(m[key('met')])
      ])
    })
  }
  return rows
}

function printTable (results) {
  const rows = comparisonRows(results.scenarios, 'baseline')
  // The floor (servers/floor.mjs) where a scenario ran it: what any rooms server on `ws` spends.
  const withFloor = results.scenarios.filter((s) => s.summary.floor !== undefined)
  if (withFloor.length > 0) {
    const floorRows = comparisonRows(withFloor, 'floor')
    process.stdout.write(`\nAgainst the floor (a bare ws server: parse, join/leave, one frame per message, one write per member per tick, ack), medians of ${results.options.rounds} round(s):\n\n${table(floorRows)}\n`)
  }
  process.stdout.write(`\nMedians of ${results.options.rounds} round(s):\n\n${table(rows)}\n`)

  const cpuRows = [['scenario', 'side', 'server CPU', 'server loop busy', 'loadgen CPU (all workers)', 'loadgen loop busy (max)', 'other processes CPU', 'limited by']]
  for (const s of results.scenarios) {
    for (const name of Object.keys(s.summary)) {
      const sum = s.summary[name]
      cpuRows.push([s.title, name, pct(sum.cpuServer), pct(sum.eluServer), pct(sum.cpuLoadgen), pct(sum.eluLoadgen), pct(sum.cpuOthers), sum.limitedBy])
    }
  }
  process.stdout.write(`\nCPU during the measurement (100% = one core; ${results.machine.cpus} cores):\n\n${table(cpuRows)}\n`)
  process.stdout.write('loop busy = event loop utilization (time not waiting for I/O). limited by: server = the server\'s loop\n' +
    `was busy ≥ ${SATURATED}% of the window; loadgen = a generator process's loop was; both = both were; machine = no loop\n` +
    'saturated but the bench used every core; other load = same, with processes outside the bench holding cores;\n' +
    'neither = nothing saturated (the in-flight window bounds the rate); n/a = memory figure (no load).\n')
  if (results.scenarios.some((s) => Object.values(s.summary).some((sum) => (sum.cpuOthers ?? 0) > 25))) {
    process.stdout.write('warning: other processes used CPU during the measurements; absolute figures are low, ratios are what compare\n')
  }
}

main().then(() => {
  killAll()
}, (err) => {
  process.stderr.write(`bench failed: ${err?.stack ?? err}\n`)
  killAll()
  process.exitCode = 1
})
