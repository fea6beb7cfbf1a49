// The layout guard (scripts/check-layout.mjs): lib/ has no import cycles and lib/ and types/ do
// not cite CONTRACT, except what its KNOWN list still allows. The list only shrinks: a new
// finding fails here, and so does a KNOWN entry the code no longer has.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const SCRIPT_URL = new URL('../scripts/check-layout.mjs', import.meta.url)

interface LayoutResult {
  cycles: Array<{ cycle: string, edges: string[] }>
  cyclesTruncated: boolean
  citations: Array<{ file: string, line: number, text: string }>
  citationsPerFile: Record<string, number>
  unresolved: string[]
  known: { cycles: string[], citations: Record<string, number> }
  new: { cycles: string[], citations: Record<string, { found: number, known: number }> }
  stale: { cycles: string[], citations: Record<string, { found: number, known: number }> }
  exitCode: number
}

/** Run the script as CI does, with its exit code (the repository itself). */
function runScript (): LayoutResult & { status: number | null } {
  const run = spawnSync(process.execPath, [fileURLToPath(SCRIPT_URL), '--json'], { encoding: 'utf8' })
  if (run.stdout === '') throw new Error(`check-layout printed nothing (status ${run.status}): ${run.stderr}`)
  return { ...JSON.parse(run.stdout), status: run.status }
}

/** The same check in this process, on a fixture tree (loading the compiler once is the slow part). */
async function checkTree (root: string): Promise<LayoutResult> {
  // A plain .mjs without declarations: the URL keeps TypeScript from resolving it.
  const layout: { checkLayout: (root: string) => LayoutResult } = await import(SCRIPT_URL.href)
  return layout.checkLayout(root)
}

t.test('lib/ and types/ hold exactly the findings KNOWN allows', async (t) => {
  const result = runScript()
  t.same(result.unresolved, [], 'every relative import resolves, so the graph has every edge')
  t.notOk(result.cyclesTruncated)
  t.same(result.new.cycles, [], 'a new import cycle: break it (move the shared type down), do not add it to KNOWN')
  t.same(result.new.citations, {}, 'a new CONTRACT citation: say it in the package\'s own words')
  t.same(result.stale.cycles, [], 'this cycle is gone: remove it from KNOWN in scripts/check-layout.mjs')
  t.same(result.stale.citations, {}, 'citations are gone: lower or remove their KNOWN count in scripts/check-layout.mjs')
  t.strictSame(result.cycles.map((c) => c.cycle), result.known.cycles, 'the cycles are exactly KNOWN.cycles')
  t.strictSame(result.citationsPerFile, result.known.citations, 'the citations are exactly KNOWN.citations')
  t.equal(result.status, 0, 'the script exits 0')
})

t.test('the check sees type imports, re-exports, import() and require, and citations in comments and strings', async (t) => {
  const root = t.testdir({
    lib: {
      'a.ts': "import type { B } from './b.js'\nexport type A = B\n",
      'b.ts': "export { a } from './a.js'\nexport type B = number\n",
      'c.ts': "export type C = import('./sub/index.js').D\n",
      sub: { 'index.ts': "export type D = string\nexport const load = () => import('../c.js')\n" },
      'd.ts': "import d2 = require('./d2.js')\nexport const d = d2\n",
      'd2.ts': "import { type X } from './d.js'\nexport type { X }\n",
      'e.ts': "export type E = import('./e.js').E | number\n",
      'f.ts': "import ts from 'typescript'\nimport type { A } from './a.js'\nexport const s = 'see CONTRACT §1'\n// CONTRACT §2\nexport type F = A | typeof ts\n",
      'g.ts': "export * from './f.js'\nexport type * from './a.js'\n"
    },
    types: { 'x.d.ts': '/** As CONTRACT §3 says. */\nexport type X = 1\n' }
  })
  const result = await checkTree(root)
  t.strictSame(result.cycles, [
    { cycle: 'a.ts -> b.ts -> a.ts', edges: ['a.ts:1 import type -> b.ts', 'b.ts:1 export from -> a.ts'] },
    { cycle: 'c.ts -> sub/index.ts -> c.ts', edges: ['c.ts:1 import() type -> sub/index.ts', 'sub/index.ts:2 import() -> c.ts'] },
    { cycle: 'd.ts -> d2.ts -> d.ts', edges: ['d.ts:1 import = require -> d2.ts', 'd2.ts:1 import type -> d.ts'] },
    { cycle: 'e.ts -> e.ts', edges: ['e.ts:1 import() type -> e.ts'] }
  ], 'every elementary cycle once, from its first file; f.ts and g.ts import without forming one')
  t.strictSame(result.citations, [
    { file: 'lib/f.ts', line: 3, text: "export const s = 'see CONTRACT §1'" },
    { file: 'lib/f.ts', line: 4, text: '// CONTRACT §2' },
    { file: 'types/x.d.ts', line: 1, text: '/** As CONTRACT §3 says. */' }
  ])
  t.strictSame(result.new.cycles, result.cycles.map((c) => c.cycle), 'none of them is in KNOWN')
  t.equal(result.exitCode, 1, 'new findings fail the script')
})

t.test('an import the check cannot resolve stops it (exit 2) instead of passing with an edge missing', async (t) => {
  const root = t.testdir({ lib: { 'a.ts': "import { b } from './b'\nexport const a = b\n" } })
  const result = await checkTree(root)
  t.strictSame(result.unresolved, ["a.ts:1 './b'"])
  t.equal(result.exitCode, 2)
})
