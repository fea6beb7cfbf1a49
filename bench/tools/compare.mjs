// Two bench results side by side: each scenario's plugin column from `after` against the same
// column from `before` (say, two builds of the plugin, run with BENCH_PLUGIN_ENTRY), as a results
// file of its own, so the runner's chart draws it (chart-png.mjs, or lib/chart.mjs for SVG).
//
//   node bench/tools/compare.mjs before.json after.json compared.json [--label "the build before"]
//   node bench/tools/chart-png.mjs compared.json docs/images/compared.png
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values: flags, positionals } = parseArgs({ allowPositionals: true, options: { label: { type: 'string', default: 'the build before' } } })
const [beforeFile, afterFile, outFile] = positionals
if (!beforeFile || !afterFile || !outFile) {
  process.stderr.write('usage: node bench/tools/compare.mjs <before.json> <after.json> <out.json> [--label text]\n')
  process.exit(2)
}
const before = JSON.parse(readFileSync(beforeFile, 'utf8'))
const after = JSON.parse(readFileSync(afterFile, 'utf8'))
const scenarios = []
for (const s of after.scenarios) {
  const old = before.scenarios.find((b) => b.name === s.name)
  if (old === undefined) continue
  const metrics = s.metrics.map((m) => {
    const b = old.metrics.find((x) => x.key === m.key)?.plugin ?? null
    const a = m.plugin
    // no per-round pairing: the two files ran at different times
    return { key: m.key, label: m.label, better: m.better, decimals: m.decimals, plugin: a, baseline: b, ratio: a !== null && b ? a / b : null, met: null, roundRatios: [] }
  })
  scenarios.push({ name: s.name, title: `${s.title}: after vs before`, metrics })
}
const out = {
  date: after.date,
  commit: `${before.commit ?? '?'} → ${after.commit ?? '?'}`,
  machine: after.machine,
  options: { ...after.options, rounds: Math.min(before.options.rounds, after.options.rounds), baselineName: flags.label },
  scenarios
}
writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n')
for (const s of scenarios) {
  for (const m of s.metrics) process.stdout.write(`${s.name}  ${m.label}: ${m.baseline ?? 'n/a'} → ${m.plugin ?? 'n/a'}${m.ratio === null ? '' : ` (${m.ratio.toFixed(2)}×)`}\n`)
}
