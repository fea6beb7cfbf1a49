// The SVG chart `npm run bench` writes: per scenario, the plugin's figure as a multiple of the
// baseline's (one bar per headline metric, on a log scale, so 0.5× and 2× are as far from 1×),
// with the target marked. "Better" is always to the right: for lower-is-better metrics the bar
// is baseline / plugin.

const ROW = 26
const LABEL_WIDTH = 430
const PLOT_WIDTH = 420
const MIN = 0.1
const MAX = 30

function escape (text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function x (ratio) {
  const clamped = Math.min(MAX, Math.max(MIN, ratio))
  return LABEL_WIDTH + (PLOT_WIDTH * Math.log(clamped / MIN)) / Math.log(MAX / MIN)
}

/** Rows to draw: the per-CPU-second metric where a scenario has one (else its first), and its latency p99. */
function rowsOf (results) {
  const rows = []
  for (const s of results.scenarios) {
    const wanted = s.metrics.filter((m) => /CpuSec$/.test(m.key) || m.target !== undefined || /^p99/.test(m.key) || m.key === 'redisCpuPerMessageUs')
    for (const m of (wanted.length > 0 ? wanted : s.metrics.slice(0, 1))) {
      if (m.ratio === null || m.ratio === 0) continue
      const better = m.better === 'lower' ? 1 / m.ratio : m.ratio
      const target = m.target ? (m.better === 'lower' ? 1 / m.target.ratio : m.target.ratio) : null
      rows.push({ label: `${s.name}: ${m.label}`, better, target, met: m.met })
      // Where the scenario ran the floor (servers/floor.mjs), the plugin against it too.
      if (/CpuSec$/.test(m.key) && m.floorRatio) {
        const floorTarget = m.floorTarget ? m.floorTarget.ratio : null
        rows.push({ label: `${s.name}: ${m.label}, vs the floor`, better: m.floorRatio, target: floorTarget, met: m.floorMet })
      }
    }
  }
  return rows
}

export function chartSvg (results) {
  const rows = rowsOf(results)
  const top = 44
  const height = top + rows.length * ROW + 34
  const width = LABEL_WIDTH + PLOT_WIDTH + 90
  const parts = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`)
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`)
  parts.push(`<text x="10" y="18" font-size="14" font-weight="bold">fastify-ws-rooms against ${escape(results.options?.baselineName ?? 'bench/baseline')}: how many times better (log scale)</text>`)
  parts.push(`<text x="10" y="34" fill="#555">commit ${escape(results.commit ?? '?')}, ${escape(results.date?.slice(0, 10) ?? '')}, medians of ${results.options.rounds} round(s); | = target; bars right of 1× are better than the baseline</text>`)
  for (const tick of [0.1, 0.3, 1, 3, 10, 30]) {
    const tx = x(tick).toFixed(1)
    parts.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${top + rows.length * ROW}" stroke="${tick === 1 ? '#333' : '#ddd'}"/>`)
    parts.push(`<text x="${tx}" y="${top + rows.length * ROW + 16}" text-anchor="middle" fill="#555">${tick}×</text>`)
  }
  rows.forEach((row, i) => {
    const y = top + i * ROW
    const x1 = x(1)
    const x2 = x(row.better)
    const colour = row.met === false ? '#d9534f' : row.better >= 1 ? '#2e7d32' : '#ef8c00'
    parts.push(`<text x="${LABEL_WIDTH - 8}" y="${y + 16}" text-anchor="end">${escape(row.label)}</text>`)
    parts.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y + 5}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${ROW - 10}" fill="${colour}"/>`)
    const labelX = Math.max(x1, x2, row.target === null ? 0 : x(row.target) + 2) + 4
    parts.push(`<text x="${labelX.toFixed(1)}" y="${y + 16}">${row.better.toFixed(2)}×</text>`)
    if (row.target !== null) {
      const tx = x(row.target).toFixed(1)
      parts.push(`<line x1="${tx}" y1="${y + 2}" x2="${tx}" y2="${y + ROW - 2}" stroke="black" stroke-width="2"/>`)
    }
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
