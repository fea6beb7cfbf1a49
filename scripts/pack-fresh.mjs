// Packs the package the way a fresh clone is packed: the files git knows (tracked ones, and new
// ones that are not ignored) are copied into a staging directory that has no dist/ and shares the
// repo's node_modules; `npm pack` there runs the prepack script, which builds dist/. So the tarball
// proves that `npm pack` (and `npm publish`) in a clean checkout ships a built package, and the
// repo's own dist/ is never touched (other tests may be reading it). A caller that only needs the
// built package (not the proof that prepack builds it) may reuse the repo's dist/ when it is
// complete and newer than its sources (`npm test` builds first), which saves a build.
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** Run a command, its output as text; a failure (or a step past 180 s, killed outright: a child that ignores SIGTERM must not hang the run) throws with its output. */
export function run (cmd, args, cwd, what, env = {}) {
  const result = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
    killSignal: 'SIGKILL',
    env: { ...process.env, npm_config_loglevel: 'error', npm_config_update_notifier: 'false', ...env }
  })
  if (result.status !== 0) {
    throw new Error(`${what} failed (${result.error?.message ?? (result.signal !== null ? `killed by ${result.signal}` : `exit ${result.status}`)})\n${result.stdout}\n${result.stderr}`)
  }
  return result.stdout
}

/** The files of `repo` a fresh clone would have (plus new, unignored ones), relative paths. */
export function cloneFiles (repo) {
  const listed = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], repo, 'git ls-files (the pack needs a git checkout)')
  // --cached still lists a tracked file deleted in the working tree: a clone of this state would not have it.
  return listed.split('\0').filter((file) => file !== '' && existsSync(join(repo, file)) && statSync(join(repo, file)).isFile())
}

function newestMtime (path) {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)))
  return newest
}

function exportTargets (value) {
  if (typeof value === 'string') return [value]
  return Object.values(value).flatMap(exportTargets)
}

/** The files the package.json `exports` of `dir` point at, relative, deduplicated. */
export function exportedFiles (dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  return [...new Set(exportTargets(pkg.exports).map((target) => target.replace(/^\.\//, '')))]
}

/** Is `repo`'s dist/ complete (every export target) and newer than everything it is built from? */
export function distIsFresh (repo) {
  const distFiles = exportedFiles(repo).filter((file) => file.startsWith('dist/')).map((file) => join(repo, file))
  const sources = ['lib', 'scripts/build.mjs', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json'].map((p) => newestMtime(join(repo, p)))
  return distFiles.every(existsSync) && Math.min(...distFiles.map((file) => statSync(file).mtimeMs)) >= Math.max(...sources)
}

/**
 * Stage a clean copy of `repo` in `work`/stage and `npm pack` it into `work`: prepack builds
 * dist/, or with `reuseFreshDist` the repo's dist/ is copied in when it is fresh (and the pack
 * runs without scripts). Returns the tarball's path and name, its file list, the staging
 * directory and how dist/ got there.
 */
export function packFresh (repo, work, { reuseFreshDist = false } = {}) {
  const stage = join(work, 'stage')
  for (const file of cloneFiles(repo)) {
    if (file === 'dist' || file.startsWith('dist/')) continue
    mkdirSync(dirname(join(stage, file)), { recursive: true })
    copyFileSync(join(repo, file), join(stage, file))
  }
  if (existsSync(join(stage, 'dist'))) throw new Error('the staging copy has a dist/ before the pack')
  // What `npm ci` gives a clone, shared rather than installed again.
  symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'), 'dir')
  const reuse = reuseFreshDist && distIsFresh(repo)
  if (reuse) cpSync(join(repo, 'dist'), join(stage, 'dist'), { recursive: true })
  // Otherwise scripts on, whatever the caller's npm config says: the prepack script is under test.
  const args = ['pack', '--json', '--pack-destination', work, ...(reuse ? ['--ignore-scripts'] : [])]
  const packed = JSON.parse(run(npm, args, stage, reuse ? 'npm pack' : 'npm pack (prepack builds dist/)', { npm_config_ignore_scripts: String(reuse) }))
  return {
    tarball: join(work, packed[0].filename),
    filename: packed[0].filename,
    files: packed[0].files.map((f) => f.path),
    stage,
    built: reuse ? "the repo's fresh dist/" : 'prepack (npm run build) in a clean copy'
  }
}
