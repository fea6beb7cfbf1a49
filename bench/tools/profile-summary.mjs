// Summarize a V8 .cpuprofile (from `node --cpu-prof`): where the samples fall, by function
// (self time) and by function including callees (total time), as percentages of all samples.
//
//   node bench/tools/profile-summary.mjs CPU.*.cpuprofile [--top 30] [--filter text]
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'

// `| head` closing the pipe early is not an error
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0) })

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, filter: { type: 'string' } }
})
const top = Number(values.top)

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfCount = new Map()
  for (const id of profile.samples) selfCount.set(id, (selfCount.get(id) ?? 0) + 1)
  const total = profile.samples.length

  const label = (n) => {
    const f = n.callFrame
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : ''
    return `${f.functionName || '(anonymous)'} ${where}`.trim()
  }
  const self = new Map()
  const inclusive = new Map()
  for (const [id, count] of selfCount) {
    const n = byId.get(id)
    const key = label(n)
    self.set(key, (self.get(key) ?? 0) + count)
    // each sample counts once per distinct function on its stack
    const seen = new Set()
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(byId.get(cur))
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + count)
    }
  }
  const show = (map, title) => {
    const rows = [...map].filter(([k]) => !values.filter || k.includes(values.filter)).sort((a, b) => b[1] - a[1]).slice(0, top)
    process.stdout.write(`\n${title}\n`)
    for (const [k, v] of rows) process.stdout.write(`${((100 * v) / total).toFixed(1).padStart(6)}%  ${k}\n`)
  }
  const seconds = (profile.endTime - profile.startTime) / 1e6
  process.stdout.write(`\n== ${basename(file)}: ${total} samples over ${seconds.toFixed(1)} s\n`)
  show(self, 'self time')
  show(inclusive, 'total time (with callees)')
}
