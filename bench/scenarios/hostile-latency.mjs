// Honest clients' latency with and without hostile ones beside them. Honest publishers chat
// in ten rooms at a steady, chat-like rate (5 messages/s each, 20 receivers a room); latency
// is measured first alone ("calm"), then while a hostile process runs at the same server:
// flooders (a burst of 250 frames a second, each from a new connection), members that never read in a room fed
// with 48 KB messages, oversized frames, silent connections, and connection storms. The
// honest figures are the point; the hostile outcomes (close codes, refused upgrades) are in
// the details. Not a pass/fail: a latency is never asserted.
//
// On the plugin side the server runs the built plugin with its default limits (rate limit,
// maxPayload, maxBufferedBytes, timeouts), and a total connection cap instead of the per-IP
// one, since every bench client comes from 127.0.0.1. The baseline side runs the tutorial
// server, which has none of these limits.
//
// In `npm run bench` (run.mjs) like any scenario: node bench/run.mjs --scenario hostile-latency
// Alone, plugin side only, after `npm run build`:  node bench/scenarios/hostile-latency.mjs [--quick]
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import { answerCommands } from '../lib/commands.mjs'
import { startServer as forkPeer } from '../lib/procs.mjs'
import { percentile, sleep } from '../lib/stats.mjs'

const ROLE = process.env.HOSTILE_LATENCY_ROLE
const self = new URL(import.meta.url)
const defaultPluginServer = new URL('../servers/plugin.mjs', import.meta.url).href

const scenario = {
  name: 'hostile-latency',
  title: 'honest latency, calm vs under attack',
  metrics: [
    { key: 'p50Calm', label: 'calm p50 (ms)', better: 'lower', decimals: 2 },
    { key: 'p99Calm', label: 'calm p99 (ms)', better: 'lower', decimals: 2 },
    { key: 'p50Hostile', label: 'attacked p50 (ms)', better: 'lower', decimals: 2 },
    { key: 'p99Hostile', label: 'attacked p99 (ms)', better: 'lower', decimals: 2 },
    { key: 'lostHostile', label: 'honest deliveries lost under attack', better: 'lower' }
  ],
  params (opts) {
    return {
      rooms: 10,
      receiversPerRoom: opts.quick ? 10 : 20,
      messagesPerSecond: 5,
      measureMs: opts.measureMs ?? (opts.quick ? 3000 : 6000),
      warmupMs: 1000,
      hostile: {
        flooders: 10,
        floodBurst: 250,
        neverReaders: 5,
        firehoseTalkers: 6,
        firehoseBytes: 48_000,
        oversizedEveryMs: 200,
        silent: 20,
        stormSize: 200,
        stormEveryMs: 1000
      }
    }
  },
  async run (ctx, side, p) {
    // Our own server module when the plugin side is the default one: same built plugin, limits on.
    const serverSide = side.script.href === defaultPluginServer
      ? { name: side.name, script: self }
      : side
    const honestConnections = p.rooms * (p.receiversPerRoom + 1)
    const server = await ctx.startServer(serverSide, {
      env: { HOSTILE_LATENCY_ROLE: 'server', HOSTILE_LATENCY_MAX_CONNECTIONS: String(honestConnections + 100) }
    })
    let honest = null
    let hostile = null
    try {
      honest = await forkPeer(self, { env: { HOSTILE_LATENCY_ROLE: 'honest' }, label: 'honest clients' })
      hostile = await forkPeer(self, { env: { HOSTILE_LATENCY_ROLE: 'hostile' }, label: 'hostile clients' })
      await honest.request('setup', { port: server.port, rooms: p.rooms, receivers: p.receiversPerRoom }, 60000)
      await honest.request('start', { messagesPerSecond: p.messagesPerSecond }, 10000)
      await sleep(p.warmupMs)

      const u0 = await server.usage()
      await honest.request('mark', { phase: 'calm' })
      await sleep(p.measureMs)
      const calm = await honest.request('mark', { phase: 'between' }, 30000)
      const u1 = await server.usage()

      await hostile.request('start', { port: server.port, rooms: p.rooms, ...p.hostile }, 30000)
      await sleep(p.warmupMs)
      const u2 = await server.usage()
      await honest.request('mark', { phase: 'hostile' })
      await sleep(p.measureMs)
      const attacked = await honest.request('mark', { phase: 'after' }, 30000)
      const u3 = await server.usage()
      const outcomes = await hostile.request('stop', {}, 30000)
      const end = await honest.request('stop', {}, 30000)

      const cpu = (a, b) => (100 * ((b.cpu.user - a.cpu.user) + (b.cpu.system - a.cpu.system))) / (b.t - a.t)
      return {
        values: {
          p50Calm: ms(percentile(calm.samples, 50)),
          p99Calm: ms(percentile(calm.samples, 99)),
          p50Hostile: ms(percentile(attacked.samples, 50)),
          p99Hostile: ms(percentile(attacked.samples, 99)),
          lostHostile: attacked.lost
        },
        cpu: null,
        details: {
          samplesCalm: calm.samples.length,
          samplesHostile: attacked.samples.length,
          lostCalm: calm.lost,
          lostHostile: attacked.lost,
          honestUnexpectedCloses: end.closes,
          honestConnectFailures: end.failures,
          serverCpuCalm: cpu(u0, u1),
          serverCpuHostile: cpu(u2, u3),
          serverRssMBHostile: u3.mem.rss / 1048576,
          hostile: outcomes
        }
      }
    } finally {
      await Promise.all([honest?.stop({ politeCmd: 'close' }), hostile?.stop({ politeCmd: 'close' })])
      await server.close()
    }
  }
}

export default scenario

const ms = (micros) => micros === null ? null : micros / 1000
const nowMicros = () => Number(process.hrtime.bigint() / 1000n)

// ---- child processes: the control protocol of bench/lib/procs.mjs ----

function serveCommands (commands, port = 0) {
  process.send({ type: 'ready', port, pid: process.pid })
  answerCommands(commands, { afterReply: (cmd) => { if (cmd === 'close') process.disconnect() } })
}

async function openClient (WebSocket, url, { onMessage, onClose } = {}) {
  const ws = new WebSocket(url)
  ws.on('error', () => {})
  if (onMessage) ws.on('message', onMessage)
  if (onClose) ws.once('close', onClose)
  const outcome = await new Promise((resolve) => {
    ws.once('message', () => resolve('open')) // the welcome
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(`http ${res.statusCode}`) })
    ws.once('close', () => resolve('closed'))
  })
  return { ws, outcome }
}

// The plugin with its default limits; token check as in bench/servers/plugin.mjs.
async function runServer () {
  const { serveControl } = await import('../servers/control.mjs')
  const { default: Fastify } = await import('fastify')
  const entry = process.env.BENCH_PLUGIN_ENTRY ?? '../../dist/esm/index.js'
  const { default: wsRooms } = await import(new URL(entry, import.meta.url).href)
  const app = Fastify({ logger: false })
  await app.register(wsRooms, {
    authenticate: (token) => (token ? { id: token } : null),
    maxConnectionsPerIp: 0,
    maxConnections: Number(process.env.HOSTILE_LATENCY_MAX_CONNECTIONS ?? 10000)
  })
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  serveControl({ port: app.server.address().port, connections: () => app.rooms.stats().connections, close: () => app.close() })
}

// Honest clients: per room one publisher at a steady rate and N receivers; latency is the time
// from the timestamp in the text to arrival; every message must reach every receiver.
async function runHonest () {
  const { default: WebSocket } = await import('ws')
  const clients = []
  const publishers = []
  let phase = 'warmup'
  let samples = []
  let timer = null
  const expected = new Map() // phase -> deliveries owed
  const received = new Map() // phase -> deliveries seen
  let closes = {}
  let failures = 0
  let stopping = false
  let receiversPerRoom = 0

  async function join (c, room, token) {
    await new Promise((resolve, reject) => {
      const onMessage = (data) => {
        const m = JSON.parse(data.toString())
        if (m.type === 'ack' && m.id === 'join') { c.ws.off('message', onMessage); resolve() }
        if (m.type === 'error') reject(new Error(`${token}: ${m.code}`))
      }
      c.ws.on('message', onMessage)
      c.ws.send(JSON.stringify({ type: 'join', room, id: 'join' }))
    })
  }

  const commands = {
    async setup ({ port, rooms, receivers }) {
      receiversPerRoom = receivers
      for (let r = 0; r < rooms; r++) {
        const room = `honest-${r}`
        for (let i = 0; i <= receivers; i++) {
          const token = `honest-${r}-${i}`
          const c = await openClient(WebSocket, `ws://127.0.0.1:${port}/ws?token=${token}`, {
            onClose: (code) => { if (!stopping) closes[code] = (closes[code] ?? 0) + 1 }
          })
          if (c.outcome !== 'open') { failures++; continue }
          await join(c, room, token)
          clients.push(c)
          if (i === receivers) {
            publishers.push({ ws: c.ws, room, seq: 0 })
          } else {
            c.ws.on('message', (data) => {
              const m = JSON.parse(data.toString())
              if (m.type !== 'chat' || !m.text.startsWith('h|')) return
              const [, sent, tag] = m.text.split('|')
              received.set(tag, (received.get(tag) ?? 0) + 1)
              if (tag === phase) samples.push(nowMicros() - Number(sent))
            })
          }
        }
      }
      return { clients: clients.length, failures }
    },
    start ({ messagesPerSecond }) {
      timer = setInterval(() => {
        for (const p of publishers) {
          if (p.ws.readyState !== WebSocket.OPEN) continue
          p.ws.send(JSON.stringify({ type: 'message', room: p.room, text: `h|${nowMicros()}|${phase}|${p.seq++}` }))
          expected.set(phase, (expected.get(phase) ?? 0) + receiversPerRoom)
        }
      }, 1000 / messagesPerSecond)
      return {}
    },
    async mark ({ phase: next }) {
      const done = phase
      const taken = samples
      phase = next
      samples = []
      // Give the last messages of the finished phase time to arrive before counting losses.
      await sleep(500)
      return { samples: taken, lost: (expected.get(done) ?? 0) - (received.get(done) ?? 0) }
    },
    stop () {
      stopping = true
      clearInterval(timer)
      for (const c of clients) c.ws.terminate()
      return { closes, failures }
    },
    close () {
      stopping = true
      clearInterval(timer)
      for (const c of clients) c.ws.terminate()
      closes = {}
      return {}
    }
  }
  serveCommands(commands)
}

// Hostile clients, each kind in its own loop until stop.
async function runHostile () {
  const { default: WebSocket } = await import('ws')
  const state = { running: false }
  const loops = []
  const open = new Set()
  const mine = new WeakSet()
  const outcomes = { closeCodes: {}, upgrades: {}, floodFrames: 0, oversizedFrames: 0, stormAttempts: 0, firehoseBytes: 0 }
  const count = (table, key) => { table[key] = (table[key] ?? 0) + 1 }
  let seq = 0

  async function client (url, opts) {
    const c = await openClient(WebSocket, url, opts)
    count(outcomes.upgrades, c.outcome)
    if (c.outcome === 'open') {
      open.add(c.ws)
      c.ws.once('close', (code) => { open.delete(c.ws); if (state.running && !mine.has(c.ws)) count(outcomes.closeCodes, code) })
      const terminate = c.ws.terminate.bind(c.ws)
      // Closes we cause ourselves are not the server's verdict: only count the others.
      c.ws.terminate = () => { mine.add(c.ws); terminate() }
    }
    return c
  }
  const closed = (ws) => new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve()
    else ws.once('close', resolve)
  })
  const pace = (ms) => sleep(ms)

  const commands = {
    start (p) {
      state.running = true
      const url = (name) => `ws://127.0.0.1:${p.port}/ws?token=hostile-${name}-${++seq}`
      // Flooders: join an honest room, burst, wait, reconnect, again.
      for (let f = 0; f < p.flooders; f++) {
        loops.push((async () => {
          while (state.running) {
            const c = await client(url('flood'))
            if (c.outcome !== 'open') { await pace(100); continue }
            const room = `honest-${f % p.rooms}`
            c.ws.send(JSON.stringify({ type: 'join', room }))
            for (let i = 0; i < p.floodBurst && c.ws.readyState === WebSocket.OPEN; i++) {
              c.ws.send(JSON.stringify({ type: 'message', room, text: `flood ${i}`, id: i }))
              outcomes.floodFrames++
            }
            // A fixed pause whatever the server did, so both sides get the same flood rate.
            await pace(1000)
            c.ws.terminate()
          }
        })())
      }
      // Members that never read, in a room fed by talkers with large messages.
      for (let n = 0; n < p.neverReaders; n++) {
        loops.push((async () => {
          while (state.running) {
            const c = await client(url('sloth'))
            if (c.outcome !== 'open') { await pace(100); continue }
            c.ws.send(JSON.stringify({ type: 'join', room: 'firehose' }))
            // Not reading for 4 s at a time; a glance in between shows whether the server gave up (1013).
            while (state.running && c.ws.readyState === WebSocket.OPEN) {
              c.ws.pause()
              await pace(4000)
              c.ws.resume()
              await Promise.race([closed(c.ws), pace(300)])
            }
            c.ws.terminate()
          }
        })())
      }
      for (let n = 0; n < p.firehoseTalkers; n++) {
        loops.push((async () => {
          const blob = 'z'.repeat(p.firehoseBytes)
          while (state.running) {
            const c = await client(url('talker'))
            if (c.outcome !== 'open') { await pace(100); continue }
            c.ws.send(JSON.stringify({ type: 'join', room: 'firehose' }))
            // Within the default rate limit (100 frames / 10 s).
            while (state.running && c.ws.readyState === WebSocket.OPEN) {
              c.ws.send(JSON.stringify({ type: 'message', room: 'firehose', text: blob }))
              outcomes.firehoseBytes += p.firehoseBytes
              await pace(110)
            }
            c.ws.terminate()
          }
        })())
      }
      // Oversized frames.
      loops.push((async () => {
        while (state.running) {
          const c = await client(url('big'))
          if (c.outcome === 'open') {
            c.ws.send('x'.repeat(70_000))
            outcomes.oversizedFrames++
            await Promise.race([closed(c.ws), pace(2000)])
            c.ws.terminate()
          }
          await pace(p.oversizedEveryMs)
        }
      })())
      // Silent connections, replaced when the server closes them.
      for (let n = 0; n < p.silent; n++) {
        loops.push((async () => {
          while (state.running) {
            const c = await client(url('mute'))
            if (c.outcome === 'open') await Promise.race([closed(c.ws), (async () => { while (state.running && c.ws.readyState === WebSocket.OPEN) await pace(100) })()])
            c.ws.terminate()
            await pace(100)
          }
        })())
      }
      // Connection storms: a burst of upgrades, each dropped once answered.
      loops.push((async () => {
        while (state.running) {
          await Promise.all(Array.from({ length: p.stormSize }, async () => {
            outcomes.stormAttempts++
            const c = await client(url('storm'))
            c.ws.terminate()
          }))
          await pace(p.stormEveryMs)
        }
      })())
      // A raw socket that sends half an upgrade request and stalls.
      loops.push((async () => {
        while (state.running) {
          const socket = net.connect({ port: p.port, host: '127.0.0.1' })
          socket.on('error', () => {})
          socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n')
          await pace(1000)
          socket.destroy()
        }
      })())
      return { loops: loops.length }
    },
    async stop () {
      state.running = false
      for (const ws of open) ws.terminate()
      await Promise.race([Promise.all(loops), sleep(5000)])
      for (const ws of open) ws.terminate()
      return outcomes
    },
    close () {
      state.running = false
      for (const ws of open) ws.terminate()
      return {}
    }
  }
  serveCommands(commands)
}

if (ROLE === 'server') await runServer()
else if (ROLE === 'honest') await runHonest()
else if (ROLE === 'hostile') await runHostile()
else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  // Standalone: the plugin side only, with a minimal context.
  const quick = process.argv.includes('--quick')
  const { killAll } = await import('../lib/procs.mjs')
  process.on('exit', () => killAll())
  const ctx = {
    startServer: (side, { env = {} } = {}) => forkPeer(side.script, { env, label: `${side.name} server` })
  }
  const params = scenario.params({ quick })
  process.stdout.write(`${scenario.title}: ${params.rooms} rooms × ${params.receiversPerRoom} receivers, ` +
    `${params.messagesPerSecond} msg/s per room, ${params.measureMs} ms per phase\n`)
  const result = await scenario.run(ctx, { name: 'plugin', script: new URL(defaultPluginServer) }, params)
  for (const m of scenario.metrics) {
    const v = result.values[m.key]
    process.stdout.write(`  ${m.label.padEnd(40)} ${v === null ? 'n/a' : v.toFixed(m.decimals ?? 0)}\n`)
  }
  process.stdout.write(JSON.stringify(result.details, null, 2) + '\n')
}
