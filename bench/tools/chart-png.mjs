// The bench's chart (bench/lib/chart.mjs) of a results file as a PNG, drawn by a headless Chromium
// (CHROMIUM, default /usr/bin/chromium), for pages that take no SVG:
//
//   node bench/tools/chart-png.mjs bench/results/latest.json docs/images/bench.png
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chartSvg } from '../lib/chart.mjs'

const [input, output] = process.argv.slice(2)
if (!input || !output) {
  process.stderr.write('usage: node bench/tools/chart-png.mjs <results.json> <out.png>\n')
  process.exit(2)
}
const svg = chartSvg(JSON.parse(readFileSync(input, 'utf8')))
const width = Number(/width="(\d+)"/.exec(svg)[1])
const height = Number(/height="(\d+)"/.exec(svg)[1])
const dir = mkdtempSync(join(os.tmpdir(), 'bench-chart-'))
try {
  const file = join(dir, 'chart.svg')
  writeFileSync(file, svg)
  execFileSync(process.env.CHROMIUM ?? '/usr/bin/chromium', [
    '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
    `--window-size=${width},${height}`, `--screenshot=${resolve(output)}`, pathToFileURL(file).href
  ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 })
  process.stdout.write(`${output}: ${width}×${height}\n`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
