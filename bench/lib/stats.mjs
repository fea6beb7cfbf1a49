import { readFileSync } from 'node:fs'

// Small numeric helpers shared by the scenarios and the runner.

export function median (values) {
  const list = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (list.length === 0) return null
  const mid = list.length >> 1
  return list.length % 2 === 1 ? list[mid] : (list[mid - 1] + list[mid]) / 2
}

/** Nearest-rank percentile of an unsorted list (`p` in 0..100). */
export function percentile (values, p) {
  if (values.length === 0) return null
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

/** CPU used between two process.cpuUsage() readings, as a percentage of one core over `wallMicros`. */
export function cpuPercent (before, after, wallMicros) {
  if (!before || !after || wallMicros <= 0) return null
  const used = (after.user - before.user) + (after.system - before.system)
  return (100 * used) / wallMicros
}

/**
 * Busy and total CPU time of the whole machine so far (Linux /proc/stat, in clock ticks),
 * so a run can tell how much CPU processes other than its own took during a measurement.
 */
export function machineCpu () {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    const idle = fields[3] + (fields[4] ?? 0)
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
    return { busy: total - idle, total }
  } catch {
    return null
  }
}

/** CPU used by everything on the machine between two machineCpu() readings, in % of one core. */
export function machinePercent (before, after, cores) {
  if (!before || !after || after.total === before.total) return null
  return (100 * cores * (after.busy - before.busy)) / (after.total - before.total)
}

export function cpuSplit (before, after, wallMicros) {
  if (!before || !after || wallMicros <= 0) return null
  return {
    user: (100 * (after.user - before.user)) / wallMicros,
    system: (100 * (after.system - before.system)) / wallMicros
  }
}

/** Event loop utilization between two performance.eventLoopUtilization() readings, in %. */
export function eluPercent (before, after) {
  if (!before || !after) return null
  const active = after.active - before.active
  const idle = after.idle - before.idle
  return active + idle > 0 ? (100 * active) / (active + idle) : null
}

export const SATURATED = 90

/**
 * Which side limited a figure. A process whose event loop was busy (not waiting for I/O) for
 * nearly the whole window could not have gone faster: that is the limit. Event loop
 * utilization rather than CPU use, because on a shared machine a busy process may get less
 * than a full core; it is still the bottleneck. When no loop is saturated, the flow control
 * window (latency) bounds the rate; `other load` says other processes held the cores.
 */
export function limitedBy ({ serverElu, workerElu = [], server, workers = [], others }, cores) {
  if (serverElu === null || serverElu === undefined) return 'unknown'
  // A loop can also be held up outside its busy time (GC threads, descheduling): a full core of CPU counts too.
  const serverSat = Math.max(serverElu, server ?? 0) >= SATURATED
  const genSat = workerElu.some((elu, i) => Math.max(elu, workers[i] ?? 0) >= SATURATED)
  if (serverSat && genSat) return 'both'
  if (serverSat) return 'server'
  if (genSat) return 'loadgen'
  const total = server + workers.reduce((a, b) => a + b, 0) + (others ?? 0)
  if (total >= SATURATED * cores) return others > 25 ? 'other load' : 'machine'
  return 'neither'
}

export function mode (values) {
  const counts = new Map()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  let best = null
  let bestCount = 0
  for (const [v, c] of counts) {
    if (c > bestCount) {
      best = v
      bestCount = c
    }
  }
  return best
}

export function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
