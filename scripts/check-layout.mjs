#!/usr/bin/env node
// Layout guard, run by test/layout.test.ts and by hand (`node scripts/check-layout.mjs`):
// 1. Import cycles among lib/**/*.ts. Every file is parsed with the TypeScript compiler API and
//    every module reference is an edge: `import`, `import type`, `export … from`, `export type …
//    from`, `import x = require()`, `import('…')` (call or type) and `require('…')`. A type-only
//    import is an edge too: it couples the two files just the same, and a cycle of types is
//    where a cycle of values starts. Each elementary cycle is reported once, rotated to start at
//    its alphabetically first file.
// 2. Citations of "CONTRACT" anywhere in lib/ or types/ (comments, strings, anything): that spec
//    is not part of the package, so the package's code and types say things in their own words.
//
// KNOWN lists what the code holds today; the redesign shrinks it to nothing. Exit code: 0 when
// the findings are exactly KNOWN, 1 when there is a finding KNOWN does not allow or a KNOWN entry
// that is no longer found (remove it: the list only shrinks), 2 when the check itself cannot run
// (a relative import that resolves to no file, so an edge would be missed).
// Options: --json prints the result as JSON; --root DIR checks DIR/lib and DIR/types instead.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

/** Findings allowed for now. Never add to this list: fix the new finding instead. */
export const KNOWN = {
  /** Cycles as printed: paths relative to lib/, starting at the alphabetically first file. */
  cycles: [],
  /** "CONTRACT" citations: how many lines cite it, per file (relative to the root). */
  citations: {}
}

/** More elementary cycles than this and the graph is tangled enough: stop listing. */
const MAX_CYCLES = 1000
const TS_SOURCE = /\.(?:ts|mts|cts|tsx)$/

function filesUnder (dir) {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true })
    .map((name) => join(dir, name))
    .filter((file) => statSync(file).isFile())
    .sort()
}

/** The file a relative specifier names, as TypeScript's nodenext resolution finds it (`.js` → `.ts`). */
function resolveSpecifier (fromFile, specifier) {
  const base = resolve(dirname(fromFile), specifier)
  const candidates = [base]
  const ext = /\.(m|c)?js$/.exec(base)
  if (ext !== null) {
    const stem = base.slice(0, -ext[0].length)
    const m = ext[1] ?? ''
    candidates.push(`${stem}.${m}ts`, `${stem}.d.${m}ts`, ...(m === '' ? [`${stem}.tsx`] : []))
  } else {
    candidates.push(`${base}.ts`, `${base}.tsx`, `${base}.d.ts`, join(base, 'index.ts'), join(base, 'index.d.ts'))
  }
  return candidates.find((file) => existsSync(file) && statSync(file).isFile())
}

/** Every module reference of one source file: { specifier, kind, line }. */
function moduleReferences (file) {
  const text = readFileSync(file, 'utf8')
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS)
  const found = []
  const add = (literal, kind) => {
    if (literal === undefined || !ts.isStringLiteralLike(literal)) return
    const line = source.getLineAndCharacterOfPosition(literal.getStart(source)).line + 1
    found.push({ specifier: literal.text, kind, line })
  }
  const visit = (node) => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause
      const typeOnly = clause !== undefined && (clause.isTypeOnly ||
        (clause.name === undefined && clause.namedBindings !== undefined && ts.isNamedImports(clause.namedBindings) &&
          clause.namedBindings.elements.length > 0 && clause.namedBindings.elements.every((e) => e.isTypeOnly)))
      add(node.moduleSpecifier, typeOnly ? 'import type' : 'import')
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined) {
      add(node.moduleSpecifier, node.isTypeOnly ? 'export type from' : 'export from')
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, 'import = require')
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, 'import() type')
    } else if (ts.isCallExpression(node) && node.arguments.length > 0) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0], 'import()')
      else if (ts.isIdentifier(node.expression) && node.expression.text === 'require') add(node.arguments[0], 'require')
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** lib/'s import graph: Map<file, Map<target, { kind, line }>> (the first reference to each target). */
function importGraph (libDir) {
  const files = filesUnder(libDir).filter((f) => TS_SOURCE.test(f))
  const inLib = new Set(files)
  const graph = new Map()
  const unresolved = []
  for (const file of files) {
    const edges = new Map()
    for (const ref of moduleReferences(file)) {
      if (!ref.specifier.startsWith('.')) continue // a package, not a file of ours
      const target = resolveSpecifier(file, ref.specifier)
      if (target === undefined) unresolved.push(`${relative(libDir, file)}:${ref.line} '${ref.specifier}'`)
      else if (inLib.has(target) && !edges.has(target)) edges.set(target, { kind: ref.kind, line: ref.line })
    }
    graph.set(file, edges)
  }
  return { graph, unresolved }
}

/** Strongly connected components (Tarjan): only their members can be on a cycle. */
function componentOf (graph) {
  const index = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const component = new Map()
  let next = 0
  const connect = (v) => {
    index.set(v, next)
    low.set(v, next)
    next++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v).keys()) {
      if (!index.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)))
      }
    }
    if (low.get(v) === index.get(v)) {
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        component.set(w, v)
      } while (w !== v)
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) connect(v)
  return component
}

/**
 * Every elementary cycle, each once: from each file in name order, the paths back to it through
 * later files of the same component only (so a cycle is found from its first file alone).
 */
function elementaryCycles (graph, name) {
  const component = componentOf(graph)
  const order = [...graph.keys()].sort((a, b) => name(a).localeCompare(name(b)))
  const rank = new Map(order.map((file, i) => [file, i]))
  const cycles = []
  let truncated = false
  for (const start of order) {
    const path = [start]
    const onPath = new Set(path)
    const walk = (v) => {
      for (const w of graph.get(v).keys()) {
        if (truncated) return
        if (w === start) {
          cycles.push([...path, start])
          if (cycles.length >= MAX_CYCLES) truncated = true
        } else if (!onPath.has(w) && rank.get(w) > rank.get(start) && component.get(w) === component.get(start)) {
          path.push(w)
          onPath.add(w)
          walk(w)
          onPath.delete(w)
          path.pop()
        }
      }
    }
    walk(start)
  }
  return { cycles, truncated }
}

/** Lines of lib/ and types/ that mention CONTRACT. */
function contractCitations (root) {
  const citations = []
  for (const dir of ['lib', 'types']) {
    for (const file of filesUnder(join(root, dir))) {
      const lines = readFileSync(file, 'utf8').split('\n')
      lines.forEach((text, i) => {
        if (text.includes('CONTRACT')) citations.push({ file: relative(root, file).split(sep).join('/'), line: i + 1, text: text.trim() })
      })
    }
  }
  return citations
}

/** The whole check: findings, and how they compare with KNOWN. */
export function checkLayout (root) {
  const libDir = join(root, 'lib')
  const name = (file) => relative(libDir, file).split(sep).join('/')
  const { graph, unresolved } = importGraph(libDir)
  const found = elementaryCycles(graph, name)
  const cycles = found.cycles.map((files) => ({
    cycle: files.map(name).join(' -> '),
    edges: files.slice(0, -1).map((from, i) => {
      const edge = graph.get(from).get(files[i + 1])
      return `${name(from)}:${edge.line} ${edge.kind} -> ${name(files[i + 1])}`
    })
  }))
  const citations = contractCitations(root)
  const perFile = {}
  for (const c of citations) perFile[c.file] = (perFile[c.file] ?? 0) + 1

  const foundCycles = new Set(cycles.map((c) => c.cycle))
  const knownCycles = new Set(KNOWN.cycles)
  const files = new Set([...Object.keys(perFile), ...Object.keys(KNOWN.citations)])
  const newCitations = {}
  const staleCitations = {}
  for (const file of [...files].sort()) {
    const count = perFile[file] ?? 0
    const known = KNOWN.citations[file] ?? 0
    if (count > known) newCitations[file] = { found: count, known }
    if (count < known) staleCitations[file] = { found: count, known }
  }
  const result = {
    files: graph.size,
    edges: [...graph.values()].reduce((n, edges) => n + edges.size, 0),
    cycles,
    cyclesTruncated: found.truncated,
    citations,
    citationsPerFile: perFile,
    unresolved,
    known: KNOWN,
    new: { cycles: cycles.map((c) => c.cycle).filter((c) => !knownCycles.has(c)), citations: newCitations },
    stale: { cycles: KNOWN.cycles.filter((c) => !foundCycles.has(c)), citations: staleCitations }
  }
  const problems = result.new.cycles.length + Object.keys(newCitations).length +
    result.stale.cycles.length + Object.keys(staleCitations).length + (found.truncated ? 1 : 0)
  result.exitCode = unresolved.length > 0 ? 2 : problems > 0 ? 1 : 0
  return result
}

function report (result) {
  const out = []
  const knownCycles = new Set(KNOWN.cycles)
  out.push(`check-layout: ${result.files} files in lib/, ${result.edges} import edges`)
  if (result.unresolved.length > 0) {
    out.push('', 'Relative imports that resolve to no file (the graph would miss them; fix the check or the import):')
    for (const u of result.unresolved) out.push(`  ${u}`)
  }
  out.push('', `Import cycles: ${result.cycles.length}${result.cyclesTruncated ? ` (stopped listing at ${MAX_CYCLES})` : ''}`)
  for (const c of result.cycles) {
    out.push(`  ${knownCycles.has(c.cycle) ? 'known' : 'NEW  '}  ${c.cycle}`)
    for (const e of c.edges) out.push(`           ${e}`)
  }
  out.push('', `Lines citing "CONTRACT" in lib/ and types/: ${result.citations.length}`)
  for (const c of result.citations) {
    const status = result.new.citations[c.file] !== undefined ? 'NEW? ' : 'known'
    out.push(`  ${status}  ${c.file}:${c.line}: ${c.text}`)
  }
  for (const [file, { found, known }] of Object.entries(result.new.citations)) {
    out.push(`  ${file}: ${found} citing lines, KNOWN allows ${known}: say it in the package's own words`)
  }
  const stale = [
    ...result.stale.cycles.map((c) => `  cycle ${c}`),
    ...Object.entries(result.stale.citations).map(([file, { found, known }]) => `  citations of ${file}: KNOWN ${known}, found ${found}`)
  ]
  if (stale.length > 0) out.push('', 'Gone from the code, so shrink KNOWN in scripts/check-layout.mjs:', ...stale)
  const newCount = result.new.cycles.length + Object.keys(result.new.citations).length
  out.push('', result.exitCode === 0
    ? `OK: ${result.cycles.length} cycles and ${result.citations.length} citations, all in KNOWN`
    : result.exitCode === 2
      ? 'ERROR: the check cannot see every import'
      : `FAIL: ${newCount} new finding(s), ${stale.length} stale KNOWN entr${stale.length === 1 ? 'y' : 'ies'}`)
  return out.join('\n')
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const rootAt = args.indexOf('--root')
  const root = rootAt >= 0 ? resolve(args[rootAt + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '..')
  const result = checkLayout(root)
  console.log(args.includes('--json') ? JSON.stringify(result, null, 2) : report(result))
  process.exitCode = result.exitCode
}
