// Child processes of the bench: servers and load generator workers, each forked with an IPC
// channel, each remembered by pid until it has exited, so that an error, a timeout or Ctrl-C
// in the runner never leaves one behind.
import { fork } from 'node:child_process'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

const live = new Map() // pid -> ChildProcess
let schedulingPriority = null

/** Run every child started from now on at this nice value (-20..19; below 0 needs privileges). */
export function setSchedulingPriority (value) {
  schedulingPriority = value
}

export function killAll (signal = 'SIGKILL') {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, signal)
    } catch {}
  }
  live.clear()
}

function spawnTracked (script, { args = [], env = {}, execArgv = [] } = {}) {
  const child = fork(fileURLToPath(script), args, {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced'
  })
  live.set(child.pid, child)
  if (schedulingPriority !== null) {
    try {
      os.setPriority(child.pid, schedulingPriority)
    } catch (err) {
      process.stderr.write(`could not set priority ${schedulingPriority} on pid ${child.pid}: ${err.message}\n`)
    }
  }
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000)
  })
  child.stdout.resume()
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child.pid)
      resolve({ code, signal })
    })
  })
  return { child, exited, stderr: () => stderr }
}

/** IPC request/response on a forked child (requests carry `rid`, replies echo it). */
class Peer {
  constructor ({ child, exited, stderr }, label) {
    this.child = child
    this.pid = child.pid
    this.exited = exited
    this.stderr = stderr
    this.label = label
    this.rid = 0
    this.pending = new Map()
    this.exitInfo = null
    child.on('message', (msg) => {
      if (msg === null || typeof msg !== 'object') return
      if (msg.type === 'ready') {
        this.onReady?.(msg)
        return
      }
      const entry = this.pending.get(msg.rid)
      if (entry === undefined) return
      this.pending.delete(msg.rid)
      clearTimeout(entry.timer)
      if (msg.ok) entry.resolve(msg.data)
      else entry.reject(new Error(`${this.label}: ${msg.error}`))
    })
    exited.then((info) => {
      this.exitInfo = info
      for (const entry of this.pending.values()) {
        clearTimeout(entry.timer)
        entry.reject(new Error(`${this.label} (pid ${this.pid}) exited (${info.signal ?? info.code}) ${this.stderr().trim()}`))
      }
      this.pending.clear()
    })
  }

  waitReady (timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label} not ready after ${timeoutMs} ms ${this.stderr().trim()}`)), timeoutMs)
      this.onReady = (msg) => {
        clearTimeout(timer)
        resolve(msg)
      }
      this.exited.then((info) => {
        clearTimeout(timer)
        reject(new Error(`${this.label} exited before ready (${info.signal ?? info.code}): ${this.stderr().trim()}`))
      })
    })
  }

  request (cmd, args = {}, timeoutMs = 30000) {
    if (this.exitInfo !== null) return Promise.reject(new Error(`${this.label} has exited`))
    const rid = ++this.rid
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid)
        reject(new Error(`${this.label}: '${cmd}' timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(rid, { resolve, reject, timer })
      this.child.send({ rid, cmd, args })
    })
  }

  /** Stop by pid: ask politely (so --cpu-prof output gets written), then SIGTERM, then SIGKILL. */
  async stop ({ politeCmd = null, graceMs = 3000 } = {}) {
    if (this.exitInfo !== null) return this.exitInfo
    if (politeCmd !== null) {
      await this.request(politeCmd, {}, graceMs).catch(() => {})
      if (await settleWithin(this.exited, graceMs)) return this.exitInfo
    } else if (this.child.connected) {
      this.child.disconnect()
      if (await settleWithin(this.exited, graceMs)) return this.exitInfo
    }
    try {
      process.kill(this.pid, 'SIGTERM')
    } catch {}
    if (await settleWithin(this.exited, graceMs)) return this.exitInfo
    try {
      process.kill(this.pid, 'SIGKILL')
    } catch {}
    await this.exited
    return this.exitInfo
  }
}

async function settleWithin (promise, ms) {
  let timer
  const result = await Promise.race([
    promise.then(() => true),
    new Promise((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  ])
  clearTimeout(timer)
  return result
}

/**
 * Start a bench server (it must call serveControl from bench/servers/control.mjs).
 * @returns {Promise<Peer & { port: number, usage: Function, gc: Function }>}
 */
export async function startServer (script, { env = {}, execArgv = [], label = 'server', timeoutMs = 20000 } = {}) {
  const peer = new Peer(spawnTracked(script, { env, execArgv: ['--expose-gc', ...execArgv] }), label)
  const ready = await peer.waitReady(timeoutMs).catch(async (err) => {
    await peer.stop()
    throw err
  })
  peer.port = ready.port
  peer.usage = () => peer.request('usage', {}, 10000)
  peer.gc = () => peer.request('gc', {}, 30000)
  peer.close = () => peer.stop({ politeCmd: 'close' })
  return peer
}

/** Fork `count` load generator workers. */
export async function startWorkers (count, { env = {}, execArgv = [] } = {}) {
  const script = new URL('../loadgen.mjs', import.meta.url)
  const workers = []
  try {
    for (let i = 0; i < count; i++) {
      const peer = new Peer(spawnTracked(script, { env: { ...env, BENCH_WORKER: String(i) }, execArgv }), `loadgen#${i}`)
      workers.push(peer)
    }
    await Promise.all(workers.map((w) => w.waitReady(10000)))
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop()))
    throw err
  }
  return workers
}

/** Close every worker's clients, then stop the workers. */
export async function stopWorkers (workers) {
  await Promise.all(workers.map((w) => w.request('close', {}, 10000).catch(() => {})))
  await Promise.all(workers.map((w) => w.stop()))
}
