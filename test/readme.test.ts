// The README, followed as a newcomer would, against the package as npm ships it. The code blocks
// marked `<!-- readme-test: NAME -->` are read out of README.md as written: the install block runs
// in a fresh `npm init -y` project (the package name pointing at the packed tarball, everything
// else as it is, npm's cache first); the quick start runs with `node server.js` (only its port
// changed); a raw WebSocket client with the token is welcomed, one without it or from another
// origin is refused; the page the quick start serves is opened in headless Chromium, twice, and a
// message typed in one tab shows in the other; the client block runs in Node and talks with the
// tabs; the announce route reaches everyone; and the TypeScript version compiles under the strict
// settings `tsc --init` writes. Also: every relative link in the Markdown files resolves, in the
// repo and in the installed package.
// Uses the repo's dist/ when it is fresh (npm test builds first; else the pack builds it). No
// Chromium is a failure, not a skip: .ci/run installs it.
import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page } from 'playwright-core'
import { danglingLinks, markdownFiles } from '../scripts/check-links.mjs'
import { packFresh } from '../scripts/pack-fresh.mjs'
import { CHROMIUM, CHROMIUM_ARGS } from './fixtures/browser.js'
import { stopProcess } from './fixtures/redis-helpers.js'
import { connect, eventually, join as joinRoom, refusedUpgrade, reservedPort } from './helpers.js'

const repo = fileURLToPath(new URL('..', import.meta.url))
const readme = readFileSync(join(repo, 'README.md'), 'utf8')
const requireFromRepo = createRequire(join(repo, 'package.json'))
const tsc = requireFromRepo.resolve('typescript/bin/tsc')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const FRAME_TIMEOUT = 15_000
// npm install, Chromium and tsc: about half a minute on a quiet machine, minutes on a loaded one.
t.setTimeout(300_000)

/** The fenced code block right after `<!-- readme-test: name -->`, as written. */
function readmeBlock (name: string): string {
  const marker = `<!-- readme-test: ${name} -->`
  const at = readme.indexOf(marker)
  if (at === -1) throw new Error(`README.md has no ${marker}`)
  const match = /^\s*```[^\n]*\n([\s\S]*?)^```/m.exec(readme.slice(at + marker.length))
  if (match === null || match.index !== 0) throw new Error(`no code block right after ${marker} in README.md`)
  return match[1]
}

/** `text` with `from` replaced by `to`; `from` must occur exactly once. */
function replaceOnce (text: string, from: string | RegExp, to: string, what: string): string {
  const count = typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from.source, from.flags + 'g')) ?? []).length
  if (count !== 1) throw new Error(`expected exactly one ${String(from)} in the README's ${what} block, found ${count}`)
  return text.replace(from, to)
}

function userEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, npm_config_update_notifier: 'false', ...extra }
}

/**
 * `cmd args` as in a newcomer's shell: through `env -u NODE_OPTIONS`, since tap puts its loaders
 * (TypeScript, coverage) into the NODE_OPTIONS of every process a test spawns, whatever env it is given.
 */
function userCommand (cmd: string, args: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', cmd, ...args]]
}

function run (cmd: string, args: string[], cwd: string, what: string, env = userEnv()): { stdout: string, stderr: string } {
  const result = spawnSync(...userCommand(cmd, args), { cwd, encoding: 'utf8', env, timeout: 180_000, killSignal: 'SIGKILL' })
  if (result.status !== 0) {
    throw new Error(`${what} failed (${result.error?.message ?? result.signal ?? `exit ${result.status}`})\n${result.stdout}\n${result.stderr}`)
  }
  return { stdout: result.stdout, stderr: result.stderr }
}

/** A child process whose output is kept, stopped by its pid when the test ends. */
function start (t: Test, args: string[], cwd: string): { proc: ChildProcess, output: () => string } {
  const proc = spawn(...userCommand(process.execPath, args), { cwd, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  proc.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(() => stopProcess(proc))
  return { proc, output: () => output }
}

/** The page's log lines (the frames it received, as text) contain `text`. */
async function pageShows (page: Page, text: string): Promise<void> {
  await page.locator('#log li', { hasText: text }).first().waitFor({ timeout: 30_000 })
}

t.test('every relative link in the Markdown files resolves (file, and heading for #fragments)', async (t) => {
  const files = markdownFiles(repo)
  t.ok(files.includes('README.md') && files.some((f) => f.startsWith('docs/')), `checked: ${files.join(', ')}`)
  t.same(danglingLinks(repo, files), [], 'no dangling links')
})

t.test('the README, as a newcomer follows it: install, quick start, browser, client, TypeScript', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'fastify-ws-rooms-readme-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const started = Date.now()
  const took = (step: string): void => { t.comment(`${step}: ${((Date.now() - started) / 1000).toFixed(1)} s in`) }

  // Install: a fresh CommonJS project (what `npm init -y` makes), then the install block.
  const packed = packFresh(repo, work, { reuseFreshDist: true })
  t.comment(`packed ${packed.filename}: ${packed.built}`)
  const app = join(work, 'my-app')
  mkdirSync(app)
  run(npm, ['init', '-y'], app, 'npm init -y')
  const install = replaceOnce(readmeBlock('install'), /(?<=^npm install .*)\bfastify-ws-rooms\b/m, `'${packed.tarball}'`, 'install')
  const installed = run('sh', ['-e', '-c', install], app, "the README's install block",
    userEnv({ npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' }))
  const warnings = installed.stderr.split('\n').filter((line) => line.includes('EBADENGINE') && line.includes('package:'))
  if (warnings.length > 0) t.comment(`npm warned (see docs/troubleshooting.md): ${warnings.map((l) => l.trim()).join('; ')}`)
  const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'))
  t.equal(manifest.type, 'module', 'the project is an ES module after the install block')
  t.ok(manifest.dependencies?.fastify !== undefined && manifest.dependencies?.['fastify-ws-rooms'] !== undefined, 'fastify and fastify-ws-rooms are dependencies of the project')
  took('installed')
  const pkgDir = join(app, 'node_modules', 'fastify-ws-rooms')
  t.same(danglingLinks(pkgDir, markdownFiles(pkgDir)), [], 'every relative link in the shipped Markdown files resolves inside the installed package')

  // Quick start: `node server.js`, on a free port instead of 3000.
  let port = 0
  let server: ReturnType<typeof start> | undefined
  for (let attempt = 1; server === undefined; attempt++) {
    port = await reservedPort()
    writeFileSync(join(app, 'server.js'), replaceOnce(readmeBlock('server.js'), 'port: 3000', `port: ${port}`, 'server.js'))
    const candidate = start(t, ['server.js'], app)
    const outcome = await eventually(() => candidate.output().includes('Server listening at')
      ? 'listening'
      : candidate.proc.exitCode !== null ? `exited with ${candidate.proc.exitCode}` : undefined, 'node server.js to listen', 30_000)
      .catch((err: Error) => err.message)
    if (outcome === 'listening') server = candidate
    else if (!candidate.output().includes('EADDRINUSE') || attempt >= 3) throw new Error(`node server.js: ${outcome}\n${candidate.output()}`)
  }
  t.pass(`node server.js listens on ${port}`)
  const ws = `ws://127.0.0.1:${port}/ws`

  const alice = await connect(ws, { protocols: ['rooms.v1', 'bearer.secret'] })
  t.teardown(() => alice.ws.terminate())
  t.same(alice.welcome.user, { id: 'alice' }, 'a client with the token gets the welcome, as alice')
  await joinRoom(alice, 'general')
  t.equal((await refusedUpgrade(ws)).status, 401, 'no token: 401')
  t.equal((await refusedUpgrade(ws, { protocols: ['rooms.v1', 'bearer.wrong'] })).status, 403, 'a wrong token: 403')
  const foreign = await refusedUpgrade(ws, { protocols: ['rooms.v1', 'bearer.secret'], origin: 'https://elsewhere.example' })
  t.match(foreign, { status: 403, body: { code: 'FST_WS_ROOMS_ORIGIN_REFUSED' } }, 'a page of another origin: 403 (the Origin check the README describes)')

  took('quick start checked')

  // The browser: the served page, in two tabs.
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} exists (install Debian's chromium package; .ci/run does)`)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const tabs: Page[] = []
  for (let i = 0; i < 2; i++) {
    const page = await browser.newPage()
    await page.goto(`http://localhost:${port}/`)
    await pageShows(page, '"event":"welcome"')
    await pageShows(page, '"type":"ack","id":1')
    tabs.push(page)
  }
  t.pass('both tabs show the welcome and the ack of their join')
  await tabs[0].fill('#text', 'hello from tab one')
  await tabs[0].click('button')
  await pageShows(tabs[1], '"text":"hello from tab one"')
  const fromTab = await alice.next({ type: 'chat', text: 'hello from tab one' }, FRAME_TIMEOUT)
  t.same(fromTab.user, { id: 'alice' }, 'a message typed in one tab reaches the other tab and the other clients')

  took('browser checked')

  // The client block, in Node (Node 20 needs the flag the README names).
  writeFileSync(join(app, 'client.js'), replaceOnce(readmeBlock('client.js'), 'localhost:3000', `localhost:${port}`, 'client.js'))
  const nodeMajor = Number(process.versions.node.split('.')[0])
  const client = start(t, [...(nodeMajor < 22 ? ['--experimental-websocket'] : []), 'client.js'], app)
  await eventually(() => client.output().includes('connection(s) in general') ? true : undefined, 'client.js to print the room size', 30_000)
    .catch((err: Error) => { throw new Error(`${err.message}; client.js printed:\n${client.output()}`) })
  t.match(client.output(), /\b4 connection\(s\) in general/, 'client.js joined and counted the room: alice, two tabs and itself')
  t.same((await alice.next({ type: 'chat', text: 'hello from Node' }, FRAME_TIMEOUT)).user, { id: 'alice' }, "client.js's message reached the room")
  await pageShows(tabs[0], '"text":"hello from Node"')
  await tabs[1].fill('#text', 'hi Node')
  await tabs[1].click('button')
  await eventually(() => client.output().includes('alice: hi Node') ? true : undefined, 'client.js to print the message from the tab', 15_000)
  t.pass("a tab's message is printed by client.js")

  // The announce route: every member hears it.
  const response = await fetch(`http://127.0.0.1:${port}/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hello' }) })
  t.same(await response.json(), { sent: true }, 'POST /announce answers')
  t.match(await alice.next({ type: 'chat', text: 'hello' }, FRAME_TIMEOUT), { room: 'general', user: { id: 'server' } }, 'the announcement reaches a client')
  await pageShows(tabs[1], '"text":"hello"')
  await eventually(() => client.output().includes('server: hello') ? true : undefined, 'client.js to print the announcement', 15_000)
  t.pass('the announcement reaches the tabs and client.js')
  await stopProcess(client.proc)
  await stopProcess(server.proc)
  took('client and announce checked')

  // TypeScript: the same server, strict, with the tsconfig.json `tsc --init` writes.
  const ts = readmeBlock('server.ts')
  const code = (source: string): string[] => source.split('\n').map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('//'))
    .map((line) => line.replace('app.post<{ Body: { text: string } }>(', 'app.post('))
  t.same(code(ts), code(readmeBlock('server.js')), 'the TypeScript quick start is the JavaScript one, the body type aside')
  writeFileSync(join(app, 'server.ts'), ts)
  // The README installs @types/node; the repo's copy stands in for it (no download), as its tsc does for typescript.
  mkdirSync(join(app, 'node_modules', '@types'), { recursive: true })
  symlinkSync(join(repo, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'), 'dir')
  run(process.execPath, [tsc, '--init'], app, 'tsc --init')
  const settings = readFileSync(join(app, 'tsconfig.json'), 'utf8')
  t.match(settings, /"strict": true/, 'tsc --init writes strict: true')
  run(process.execPath, [tsc, '--noEmit'], app, "tsc --noEmit on the README's server.ts")
  t.pass('server.ts compiles with tsc --noEmit')
  took('TypeScript checked')
})
