// Hostile clients beside honest ones, all at once (CONTRACT §8: no bad input stops other
// connections from being served). While honest publishers chat in two rooms, the same rooms
// get flooders (rate_limited, then 1008), a member that never reads (1013 at maxBufferedBytes),
// one that sends an oversized frame (1009), connections that never speak (1008 at the first-
// frame timeout), one that stops answering pings (terminated at idleTimeout), and a bounded
// connection storm (429 past the per-IP cap). The honest clients must receive every message,
// exactly once and in order, and stay connected; at the end no room or connection is left.
import t from 'tap'
import { setImmediate as tick } from 'node:timers/promises'
import WebSocket from 'ws'
import { connect, join, roundTrip, serve, until, type TestClient } from './helpers.js'
import { RawClient } from './raw-client.js'

const RATE_MAX = 40
const MESSAGES_PER_PUBLISHER = 30
const FLOODERS = 3
const SILENT = 3
const STORM = 150
const PER_IP = 80

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const isChat = (m: any): boolean => m?.type === 'chat'

t.test('hostile clients beside honest ones', async (t) => {
  const s = await serve(t, {
    rateLimit: { max: RATE_MAX, windowMs: 60_000 }, // one window for the whole test: no reset mid-flood
    maxPayload: 16_384,
    maxBufferedBytes: 65_536,
    idleTimeout: 3000,
    firstFrameTimeout: 2000,
    maxConnectionsPerIp: PER_IP
  })

  // ---- honest clients: three publishers and four listeners, all in both rooms ----
  const publishers = [await s.open(), await s.open(), await s.open()]
  const listeners = [await s.open(), await s.open(), await s.open(), await s.open()]
  const honest: TestClient[] = [...publishers, ...listeners]
  for (const c of honest) {
    await join(c, 'main')
    await join(c, 'side')
  }
  const roomOf = (p: number): string => p === 2 ? 'side' : 'main'
  const sentAt = new Map<string, number>()
  const latencies: number[] = []
  for (const c of honest) {
    c.ws.on('message', (data) => {
      const m = JSON.parse(data.toString())
      const at = typeof m.text === 'string' ? sentAt.get(m.text) : undefined
      if (m.type === 'chat' && at !== undefined) latencies.push(performance.now() - at)
    })
  }

  let hostilePhasesDone = false
  async function publish (p: number): Promise<void> {
    const c = publishers[p]
    // Paced so the honest traffic spans the hostile phases; at least half the messages go out
    // while the hostiles are still at it, the rest as soon as they are done.
    for (let i = 0; i < MESSAGES_PER_PUBLISHER; i++) {
      const text = `honest p${p} #${i}`
      sentAt.set(text, performance.now())
      const answer = await c.request({ type: 'message', room: roomOf(p), text }, `p${p}-${i}`)
      if (answer.type !== 'ack') throw new Error(`publisher ${p} refused: ${JSON.stringify(answer)}`)
      if (!hostilePhasesDone || i < MESSAGES_PER_PUBLISHER / 2) await sleep(100)
    }
  }
  const publishing = Promise.all(publishers.map((_, p) => publish(p)))

  // ---- flooders: join, then 3 × RATE_MAX frames in one burst (one TCP write) ----
  async function flood (n: number): Promise<{ replies: string[], close: number }> {
    const c = await connect(s.url)
    s.track(c)
    const socket = (c.ws as unknown as { _socket: import('node:net').Socket })._socket
    socket.cork()
    c.send({ type: 'join', room: 'main', id: `f${n}-0` })
    for (let i = 1; i < 3 * RATE_MAX; i++) c.send({ type: 'message', room: 'main', text: `flood ${n} #${i}`, id: `f${n}-${i}` })
    socket.uncork()
    const closed = await c.closed
    return {
      replies: c.received.filter((m) => m.type === 'ack' || m.type === 'error').map((m) => `${m.type === 'ack' ? 'ack' : m.code} ${m.id}`),
      close: closed.code
    }
  }

  // ---- a member that never reads: paused, while the server pushes into one of its rooms ----
  async function neverReads (): Promise<{ close: number, slowBefore: number, slowAfter: number, blobs: number }> {
    const c = await connect(s.url)
    s.track(c)
    await join(c, 'main')
    await join(c, 'firehose')
    c.ws.pause()
    const slowBefore = s.app.rooms.stats().slowConsumersClosed
    const blob = { type: 'blob', data: 'x'.repeat(16_000) }
    let blobs = 0
    // Bounded: at most 64 MB; a yield between broadcasts lets the socket drain what it can.
    while (s.app.rooms.stats().slowConsumersClosed === slowBefore && blobs < 4000) {
      await s.app.rooms.broadcast('firehose', blob)
      blobs++
      await tick()
    }
    const slowAfter = s.app.rooms.stats().slowConsumersClosed
    c.ws.resume()
    const closed = await c.closed
    return { close: closed.code, slowBefore, slowAfter, blobs }
  }

  // ---- a frame over maxPayload ----
  async function oversized (): Promise<number> {
    const c = await connect(s.url)
    s.track(c)
    await join(c, 'main')
    c.send({ type: 'message', room: 'main', text: 'y'.repeat(20_000) })
    return (await c.closed).code
  }

  // ---- connections that open and never send a frame ----
  async function silent (): Promise<Array<{ code: number, reason: string }>> {
    const quiet = await Promise.all(Array.from({ length: SILENT }, async () => s.track(await connect(s.url))))
    return await Promise.all(quiet.map((c) => c.closed))
  }

  // ---- a raw client that joins, then never answers a ping ----
  async function stopsAnsweringPings (): Promise<{ closeFrame: boolean, userId: string }> {
    const raw = await RawClient.connect(s.port)
    t.teardown(() => raw.destroy())
    const welcome = await raw.nextJson((m) => m.event === 'welcome')
    raw.sendText(JSON.stringify({ type: 'join', room: 'side', id: 'j' }))
    await raw.nextJson((m) => m.type === 'ack')
    // RawClient never answers pings; the server terminates it once idleTimeout passes.
    await raw.ended
    return { closeFrame: raw.frames.some((f) => f.opcode === 8), userId: welcome.user.id }
  }

  // ---- a bounded connection storm: STORM upgrades at once, held until all are answered ----
  async function storm (): Promise<{ accepted: number, tooMany: number, other: string[] }> {
    const sockets: WebSocket[] = []
    const results = await Promise.all(Array.from({ length: STORM }, () => new Promise<string>((resolve) => {
      const ws = new WebSocket(s.url)
      sockets.push(ws)
      ws.on('error', (err) => resolve(`error ${err.message}`))
      ws.on('unexpected-response', (_req, res) => { resolve(`http ${res.statusCode}`); res.resume() })
      ws.on('message', () => resolve('accepted'))
    })))
    for (const ws of sockets) ws.terminate()
    return {
      accepted: results.filter((r) => r === 'accepted').length,
      tooMany: results.filter((r) => r === 'http 429').length,
      other: results.filter((r) => r !== 'accepted' && r !== 'http 429')
    }
  }

  const rejectedBefore = s.app.rooms.stats().rejectedUpgrades
  const [floods, slow, tooBig, quiet, idle, stormResult] = await Promise.all([
    Promise.all(Array.from({ length: FLOODERS }, (_, n) => flood(n))),
    neverReads(),
    oversized(),
    silent(),
    stopsAnsweringPings(),
    storm()
  ])
  hostilePhasesDone = true
  await publishing

  // ---- what each hostile got ----
  floods.forEach((f, n) => {
    // Frames are answered in the order they were sent: the first RATE_MAX are processed (join
    // and messages acked), the next RATE_MAX refused with rate_limited, then the close.
    const want = [
      ...Array.from({ length: RATE_MAX }, (_, i) => `ack f${n}-${i}`),
      ...Array.from({ length: RATE_MAX }, (_, i) => `rate_limited f${n}-${RATE_MAX + i}`)
    ]
    t.same(f.replies, want, `flooder ${n}: ${RATE_MAX} frames processed, ${RATE_MAX} refused with rate_limited, in order`)
    t.equal(f.close, 1008, `flooder ${n}: closed with 1008 past twice the limit`)
  })
  t.equal(slow.slowAfter, slow.slowBefore + 1, `the member that never reads is counted as a slow consumer (after ${slow.blobs} broadcasts of 16 KB)`)
  t.equal(slow.close, 1013, 'the member that never reads is closed with 1013')
  t.equal(tooBig, 1009, 'the oversized frame closes its connection with 1009')
  t.same(quiet.map((c) => c.code), Array(SILENT).fill(1008), 'connections that never speak are closed with 1008')
  t.same(quiet.map((c) => c.reason), Array(SILENT).fill('No frame received'))
  t.notOk(idle.closeFrame, 'a connection that stops answering pings is terminated (no closing handshake)')
  t.equal(stormResult.accepted + stormResult.tooMany, STORM, `every storm upgrade is accepted or refused with 429 (others: ${JSON.stringify(stormResult.other.slice(0, 3))})`)
  // The honest clients hold PER_IP slots throughout, so at most PER_IP minus them can get in.
  t.ok(stormResult.accepted > 0 && stormResult.accepted <= PER_IP - honest.length,
    `the per-IP cap let some of the storm in and turned the rest away (accepted ${stormResult.accepted}, 429 ${stormResult.tooMany} of ${STORM}; cap ${PER_IP})`)
  t.equal(s.app.rooms.stats().rejectedUpgrades - rejectedBefore, stormResult.tooMany, 'every refused upgrade is counted, once')

  // ---- the honest clients were served throughout ----
  for (const c of honest) await roundTrip(c)
  for (const [i, c] of honest.entries()) {
    t.equal(c.ws.readyState, WebSocket.OPEN, `honest client ${i} is still connected`)
    const mine = (publishers as TestClient[]).indexOf(c)
    for (let p = 0; p < publishers.length; p++) {
      if (p === mine) continue
      const got = c.received.filter((m) => isChat(m) && m.user.id === publishers[p].welcome.user.id).map((m) => m.text)
      const want = Array.from({ length: MESSAGES_PER_PUBLISHER }, (_, i) => `honest p${p} #${i}`)
      t.same(got, want, `honest client ${i} got every message of publisher ${p} once, in order`)
    }
    for (let n = 0; n < FLOODERS; n++) {
      const got = c.received.filter((m) => isChat(m) && m.room === 'main' && m.text.startsWith(`flood ${n} #`)).map((m) => m.text)
      t.same(got, Array.from({ length: RATE_MAX - 1 }, (_, i) => `flood ${n} #${i + 1}`), `honest client ${i} got flooder ${n}'s allowed messages once, in order`)
    }
    const errors = c.received.filter((m) => m.type === 'error' && !String(m.id).startsWith('rt-'))
    t.same(errors, [], `honest client ${i} never got an error (beside its own round trips)`)
    t.notOk(c.received.some((m) => m.type === 'blob'), `honest client ${i} got nothing from a room it is not in`)
  }
  // Every hostile member that was in a room left it, and the room heard of it.
  const leaves = (c: TestClient, room: string): number => c.received.filter((m) => m.type === 'system' && m.event === 'leave' && m.room === room).length
  t.equal(leaves(listeners[0], 'main'), FLOODERS + 2, 'main heard the flooders, the never-reader and the oversized sender leave')
  t.equal(leaves(listeners[0], 'side'), 1, 'side heard the ping-ignoring client leave')
  t.ok(listeners[0].received.some((m) => m.event === 'leave' && m.user.id === idle.userId), 'by its user')

  const sorted = latencies.sort((a, b) => a - b)
  const pct = (q: number): string => sorted.length === 0 ? 'n/a' : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(2)
  t.comment(`honest delivery latency under attack, ms (informational): p50 ${pct(0.5)}, p99 ${pct(0.99)}, max ${pct(1)}, n=${sorted.length}`)
  t.comment(`stats: ${JSON.stringify(s.app.rooms.stats())}`)

  // ---- everyone leaves: nothing is left behind ----
  await Promise.all(honest.map((c) => c.close()))
  await until(() => s.app.rooms.stats().connections === 0, 10_000, 'every connection to be forgotten')
  t.same(s.app.rooms.rooms(), [], 'no room is left')
  t.equal(s.app.rooms.stats().connections, 0, 'no connection is left')
})
