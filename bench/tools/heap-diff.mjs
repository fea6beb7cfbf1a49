// What grew between two V8 heap snapshots, by constructor (self sizes), optionally divided by
// a count (per connection):  node bench/tools/heap-diff.mjs before.heapsnapshot after.heapsnapshot [--per 2000] [--top 40]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0) })

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '40' } }
})
const [beforeFile, afterFile] = positionals
const per = Number(values.per)

function aggregate (file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'))
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const iType = fields.indexOf('type')
  const iName = fields.indexOf('name')
  const iSize = fields.indexOf('self_size')
  const nodes = snap.nodes
  const byKey = new Map()
  let total = 0
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]]
    let name = snap.strings[nodes[i + iName]]
    if (type !== 'object' && type !== 'closure' && type !== 'native') name = `(${type})`
    if (type === 'closure') name = `closure ${name}`
    const key = name.length > 80 ? name.slice(0, 80) : name
    const entry = byKey.get(key) ?? { size: 0, count: 0 }
    entry.size += nodes[i + iSize]
    entry.count++
    byKey.set(key, entry)
    total += nodes[i + iSize]
  }
  return { byKey, total }
}

const a = aggregate(beforeFile)
const b = aggregate(afterFile)
const rows = []
for (const [key, entry] of b.byKey) {
  const before = a.byKey.get(key) ?? { size: 0, count: 0 }
  const size = entry.size - before.size
  const count = entry.count - before.count
  if (size !== 0 || count !== 0) rows.push({ key, size, count })
}
rows.sort((x, y) => y.size - x.size)
process.stdout.write(`heap grew ${((b.total - a.total) / per).toFixed(0)} bytes${per > 1 ? ` per unit (÷${per})` : ''}\n\n`)
process.stdout.write('   bytes   objects  constructor\n')
for (const r of rows.slice(0, Number(values.top))) {
  process.stdout.write(`${(r.size / per).toFixed(0).padStart(8)}  ${(r.count / per).toFixed(2).padStart(8)}  ${r.key}\n`)
}
