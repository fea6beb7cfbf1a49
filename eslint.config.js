// neostandard (standard style) with TypeScript support. Generated output is not linted:
// build dirs, coverage, and whatever .gitignore lists (test/artifacts, bench/results, ...).
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default neostandard({
  ts: true,
  ignores: [
    ...resolveIgnoresFromGitignore(),
    'dist/**',
    'coverage/**',
    'node_modules/**',
    '.tap/**'
  ]
})
