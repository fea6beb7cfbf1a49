// tap's coverage map: every test counts toward the coverage of lib/ only (not of the tests,
// examples or fixtures it loads), so the report tells how much of the package is exercised.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

function sources (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [])
}

const lib = sources('lib')
export default () => lib
