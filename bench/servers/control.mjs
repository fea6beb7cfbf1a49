// The control channel every bench server speaks, so the runner treats the plugin and the
// baseline alike: `READY <port>` on stdout plus a `ready` IPC message once listening, and
// IPC requests for CPU/memory usage and for a full GC (servers run with --expose-gc).
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { setImmediate as tick } from 'node:timers/promises'
import { writeHeapSnapshot } from 'node:v8'
import { startProfile, stopProfile } from '../lib/profiler.mjs'

/**
 * @param {object} server
 * @param {number} server.port
 * @param {() => number} server.connections  connections the server currently holds
 * @param {() => Promise<void>} server.close
 * @param {() => object} [server.stats]  the plugin's fastify.rooms.stats(), when there is one
 */
export function serveControl ({ port, connections, close, stats }) {
  process.stdout.write(`READY ${port}\n`)
  if (typeof process.send !== 'function') return
  process.send({ type: 'ready', port, pid: process.pid })
  process.on('message', async (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.rid !== 'number') return
    try {
      let data
      switch (msg.cmd) {
        case 'usage':
          data = usage(connections)
          break
        case 'stats':
          data = stats?.() ?? null
          break
        case 'gc':
          data = await collect(connections)
          break
        case 'profile-start':
          data = await startProfile(msg.args)
          break
        case 'profile-stop':
          data = await stopProfile(msg.args)
          break
        case 'heap-snapshot':
          data = { file: writeHeapSnapshot(msg.args.file) }
          break
        case 'close':
          await close()
          data = {}
          break
        default:
          throw new Error(`unknown command ${msg.cmd}`)
      }
      process.send({ rid: msg.rid, ok: true, data })
      if (msg.cmd === 'close') process.disconnect()
    } catch (err) {
      process.send({ rid: msg.rid, ok: false, error: String(err?.stack ?? err) })
    }
  })
  // The runner going away (crash, SIGKILL) must not leave a server behind.
  process.on('disconnect', () => process.exit(0))
}

function usage (connections) {
  return {
    t: Number(process.hrtime.bigint() / 1000n),
    cpu: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
    mem: process.memoryUsage(),
    writes: writeCalls(),
    connections: connections()
  }
}

/** Write system calls this process made so far (Linux's /proc/self/io `syscw`; null elsewhere). */
function writeCalls () {
  try {
    const match = /^syscw: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))
    return match === null ? null : Number(match[1])
  } catch {
    return null
  }
}

async function collect (connections) {
  if (typeof globalThis.gc !== 'function') throw new Error('server not started with --expose-gc')
  // Several passes with turns of the event loop between them, so weak callbacks and
  // finalizers run and the second pass frees what the first one only made unreachable.
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await tick()
  }
  return usage(connections)
}
