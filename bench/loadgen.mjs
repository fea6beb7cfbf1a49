// Load generator worker, forked by bench/run.mjs (one or several processes), driven over IPC.
// Its per-frame cost is kept small on purpose: receivers count text frames from their
// headers (bench/lib/rawws.mjs) and only a few sampling sockets per worker look inside a
// frame, to read the send timestamp embedded in the message text.
//
// Fan-out flow control: each publisher keeps at most `window` messages in flight, and a
// message leaves the window when the worker's *pacer* (a receiver joined after all the
// others, so it comes late in every fan-out) has received it. Publishing therefore runs at
// whatever rate the slower of server and generator sustains, without queues building up
// in kernel buffers, so latency measures the server, not an ever-growing backlog.
import { performance } from 'node:perf_hooks'
import { RawClient, nowMicros } from './lib/rawws.mjs'
import { answerCommands } from './lib/commands.mjs'
import { startProfile, stopProfile } from './lib/profiler.mjs'

const WORKER = Number(process.env.BENCH_WORKER ?? 0)
const MAX_SAMPLES = 200000
const JOIN_TIMEOUT_MS = 20000
const STALL_MS = 5000

const recv = { frames: 0 }
const pub = { frames: 0 }
const setupCounter = { frames: 0 }

let clients = []
let groups = []
const publishers = new Map() // key -> publisher
const closes = new Map() // close code -> count (unexpected closes only)
let publishing = false
let sampling = false
let samples = []
let published = 0
const publishedByRoom = new Map()
let stalls = 0
let tearingDown = false

// ---- client setup -------------------------------------------------------------------

let nextId = 1

function onSetupText (client, payload) {
  let msg
  try {
    msg = JSON.parse(payload.toString())
  } catch {
    return
  }
  if (msg === null || typeof msg !== 'object') return
  if (msg.type === 'system' && msg.event === 'welcome') {
    client.welcomed = true
    client.tryReady()
  } else if (msg.type === 'ack' && msg.id === client.joinId) {
    client.acked = true
    client.tryReady()
  } else if (msg.type === 'error') {
    client.fail(new Error(`server refused join: ${msg.code} ${msg.text}`))
  }
}

function onClientClose (client, code) {
  if (client.fail) client.fail(new Error(`closed with ${code} during setup`))
  if (tearingDown) return
  closes.set(code, (closes.get(code) ?? 0) + 1)
}

/** Connect, send the join right after the upgrade, and resolve once welcome and ack are in. */
async function connectAndJoin ({ port, token, room, counter }) {
  const client = new RawClient({ port, path: `/ws?token=${encodeURIComponent(token)}`, counter, onText: onSetupText, onClose: onClientClose })
  clients.push(client)
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => client.fail(new Error(`join of ${room} timed out`)), JOIN_TIMEOUT_MS)
    client.tryReady = () => {
      if (client.welcomed && client.acked) done(null)
    }
    client.fail = (err) => done(err)
    const done = (err) => {
      clearTimeout(timer)
      client.fail = null
      client.tryReady = () => {}
      if (err) reject(err)
      else resolve(client)
    }
  })
  try {
    await client.open()
  } catch (err) {
    client.fail(err)
    await ready.catch(() => {})
    throw err
  }
  client.joinId = nextId++
  client.sendText(JSON.stringify({ type: 'join', room, id: client.joinId }))
  await ready
  client.inspect = false
  client.onText = null
  return client
}

async function pool (count, concurrency, fn) {
  let next = 0
  const results = new Array(count)
  async function lane () {
    while (next < count) {
      const i = next++
      results[i] = await fn(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
  return results
}

// ---- fan-out scenarios --------------------------------------------------------------

function onSampleText (client, payload) {
  // chat frames carry "text":"<publisherKey>|<seq>|<sentMicros>|<padding>"
  const now = nowMicros()
  let msg
  try {
    msg = JSON.parse(payload.toString())
  } catch {
    return
  }
  if (msg?.type !== 'chat' || typeof msg.text !== 'string') return
  const [key, seqText, sentText] = msg.text.split('|', 3)
  if (sampling && samples.length < MAX_SAMPLES) samples.push(now - Number(sentText))
  if (client.isPacer) {
    const publisher = publishers.get(key)
    if (publisher !== undefined && publisher.client.tag === client.tag) release(publisher, Number(seqText))
  }
}

function release (publisher, seq) {
  if (seq < publisher.oldest) return // already released by the stall guard
  publisher.inFlight--
  publisher.lastRelease = Date.now()
  pump(publisher)
}

function pump (publisher) {
  if (!publishing) return
  while (publisher.inFlight < publisher.window && !publisher.client.closed) {
    const seq = publisher.seq++
    let text = `${publisher.key}|${seq}|${nowMicros()}|`
    if (text.length < publisher.textSize) text += publisher.pad.slice(0, publisher.textSize - text.length)
    publisher.client.sendText(`{"type":"message","room":${publisher.roomJson},"text":"${text}","id":${seq}}`)
    publisher.inFlight++
    published++
    publishedByRoom.set(publisher.room, (publishedByRoom.get(publisher.room) ?? 0) + 1)
  }
}

async function setup ({ port, groups: groupSpecs, concurrency, phase, tokenPrefix }) {
  if (phase === 'receivers') {
    groups = groupSpecs.map((spec, g) => ({ ...spec, index: g, receiverClients: [], pacer: null }))
    const jobs = []
    for (const group of groups) {
      const plain = group.publishers > 0 ? group.receivers - 1 : group.receivers
      for (let i = 0; i < plain; i++) jobs.push({ group, i })
    }
    await pool(jobs.length, concurrency, async (n) => {
      const { group, i } = jobs[n]
      const client = await connectAndJoin({ port: group.port ?? port, token: `${tokenPrefix}-w${WORKER}-g${group.index}-r${i}`, room: group.room, counter: recv })
      group.receiverClients.push(client)
      return null
    })
    // spread the sampling sockets over the join order
    for (const group of groups) {
      const list = group.receiverClients
      const n = Math.min(group.samplers, list.length)
      for (let s = 0; s < n; s++) {
        const client = list[Math.floor((s * list.length) / n)]
        client.inspect = true
        client.onText = onSampleText
      }
    }
    return { connected: jobs.length }
  }
  if (phase === 'tail') {
    // pacers join after every receiver, then the publishers
    let connected = 0
    await pool(groups.length, concurrency, async (g) => {
      const group = groups[g]
      if (group.publishers === 0) return
      const client = await connectAndJoin({ port: group.port ?? port, token: `${tokenPrefix}-w${WORKER}-g${g}-pacer`, room: group.room, counter: recv })
      client.isPacer = true
      client.tag = `g${g}`
      client.inspect = true
      client.onText = onSampleText
      group.pacer = client
      connected++
    })
    const jobs = []
    for (const group of groups) for (let p = 0; p < group.publishers; p++) jobs.push({ group, p })
    await pool(jobs.length, concurrency, async (n) => {
      const { group, p } = jobs[n]
      const client = await connectAndJoin({ port: group.port ?? port, token: `${tokenPrefix}-w${WORKER}-g${group.index}-p${p}`, room: group.room, counter: pub })
      client.tag = `g${group.index}`
      const key = `w${WORKER}g${group.index}p${p}`
      publishers.set(key, {
        key, client, room: group.room, roomJson: JSON.stringify(group.room), seq: 0, oldest: 0, inFlight: 0, window: 1, textSize: 0, pad: '', lastRelease: 0
      })
      connected++
    })
    return { connected }
  }
  throw new Error(`unknown setup phase ${phase}`)
}

let stallTimer = null

function startPublishing ({ window, textSize }) {
  publishing = true
  const pad = 'x'.repeat(Math.max(0, textSize))
  for (const publisher of publishers.values()) {
    publisher.window = window
    publisher.textSize = textSize
    publisher.pad = pad
    publisher.lastRelease = Date.now()
    pump(publisher)
  }
  // A message that never reaches the pacer (it should not happen) would shrink the window
  // for good; after STALL_MS without progress, forget what is in flight and go on.
  stallTimer = setInterval(() => {
    const now = Date.now()
    for (const publisher of publishers.values()) {
      if (publisher.inFlight > 0 && now - publisher.lastRelease > STALL_MS) {
        stalls++
        publisher.oldest = publisher.seq
        publisher.inFlight = 0
        publisher.lastRelease = now
        pump(publisher)
      }
    }
  }, 1000)
  return { publishers: publishers.size }
}

async function stopPublishing () {
  publishing = false
  clearInterval(stallTimer)
  const deadline = Date.now() + STALL_MS
  while (Date.now() < deadline) {
    let inFlight = 0
    for (const publisher of publishers.values()) inFlight += publisher.inFlight
    if (inFlight === 0) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { published, stalls }
}

function mark ({ samples: mode } = {}) {
  const data = {
    t: nowMicros(),
    frames: recv.frames,
    pubFrames: pub.frames,
    published,
    publishedByRoom: Object.fromEntries(publishedByRoom),
    cpu: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
    closes: Object.fromEntries(closes)
  }
  if (mode === 'start') {
    samples = []
    sampling = true
    for (const publisher of publishers.values()) publisher.seqAtMark = publisher.seq
  } else if (mode === 'take') {
    sampling = false
    data.samples = samples
    samples = []
  }
  return data
}

/** The fewest messages any publisher of this worker sent since the last mark with samples 'start'. */
function progress () {
  let least = Infinity
  for (const publisher of publishers.values()) least = Math.min(least, publisher.seq - (publisher.seqAtMark ?? 0))
  return { least: least === Infinity ? null : least }
}

// ---- connect scenario (and idle clients for the memory scenario) ---------------------

async function connectMany ({ port, count, offset, concurrency, roomSize, tokenPrefix, startAt }) {
  const wait = startAt === undefined ? 0 : Math.max(0, (startAt - nowMicros()) / 1000)
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  const t0 = nowMicros()
  const lat = []
  const errors = []
  let failed = 0
  await pool(count, concurrency, async (i) => {
    const n = offset + i
    const start = nowMicros()
    try {
      await connectAndJoin({ port, token: `${tokenPrefix}-${n}`, room: `${tokenPrefix}-room-${Math.floor(n / roomSize)}`, counter: setupCounter })
      lat.push(nowMicros() - start)
    } catch (err) {
      failed++
      if (errors.length < 5) errors.push(String(err.message))
    }
  })
  const t1 = nowMicros()
  return { t0, t1, ok: lat.length, failed, errors, lat, cpu: process.cpuUsage(), elu: performance.eventLoopUtilization() }
}

async function closeAll () {
  tearingDown = true
  publishing = false
  clearInterval(stallTimer)
  const all = clients
  clients = []
  groups = []
  publishers.clear()
  publishedByRoom.clear()
  for (const client of all) client.destroy()
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && all.some((c) => !c.closed)) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  tearingDown = false
  closes.clear()
  return { closed: all.length }
}

const commands = {
  setup,
  start: startPublishing,
  stop: stopPublishing,
  mark,
  progress,
  frames: () => ({ t: nowMicros(), frames: recv.frames + pub.frames + setupCounter.frames }),
  connect: connectMany,
  close: closeAll,
  'profile-start': startProfile,
  'profile-stop': stopProfile
}

answerCommands(commands)
process.send({ type: 'ready', pid: process.pid })
