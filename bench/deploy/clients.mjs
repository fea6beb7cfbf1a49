// A load generator of the deploy scenario (bench/deploy.mjs): real fastify-ws-rooms clients
// (the built client, over `ws`), each in one history room, behind a "balancer" that sends new
// connections to the port the runner names (as a load balancer that took the stopping node out
// of rotation). It records when each client closed, opened again and recovered, and what it
// received, so the runner can count lost and duplicated messages.
import WebSocket from 'ws'

const { connect } = await import(new URL('../../dist/esm/client/index.js', import.meta.url).href)

let target = 0
class Balanced extends WebSocket {
  constructor (url, protocols) {
    const to = new URL(url)
    to.port = String(target)
    super(to.href, protocols)
  }
}

const clients = []

async function open ({ port, from, count, rooms, restartJitterMs }) {
  target = port
  const url = `ws://127.0.0.1:${port}/ws`
  for (let i = from; i < from + count; i += 50) {
    const batch = []
    for (let j = i; j < Math.min(from + count, i + 50); j++) {
      const room = `h-${j % rooms}`
      const state = { room, received: [], closedAt: 0, reopenedAt: 0, recoveredAt: 0, recovered: undefined, closeCode: 0 }
      const client = connect(url, { WebSocket: Balanced, token: `u${j}`, tokenTransport: 'query', restartJitterMs, presence: false })
      client.on('chat', (m) => { if (m.room === room) state.received.push(Number(m.text)) })
      client.on('close', (info) => { if (state.closedAt === 0) { state.closedAt = Date.now(); state.closeCode = info.code } })
      client.on('open', (info) => { if (info.reconnected && state.reopenedAt === 0) state.reopenedAt = Date.now() })
      client.on('recovery', (info) => {
        if (info.room === room && state.recoveredAt === 0) { state.recoveredAt = Date.now(); state.recovered = info.recovered }
      })
      client.on('error', () => {})
      clients.push({ client, state })
      batch.push(client.join(room))
    }
    await Promise.all(batch)
  }
}

process.on('message', async (msg) => {
  if (msg.cmd === 'open') {
    await open(msg)
    process.send({ rid: msg.rid, opened: clients.length })
  } else if (msg.cmd === 'sendTo') {
    target = msg.port
    process.send({ rid: msg.rid })
  } else if (msg.cmd === 'status') {
    process.send({ rid: msg.rid, recovered: clients.filter((c) => c.state.recoveredAt !== 0).length, total: clients.length })
  } else if (msg.cmd === 'report') {
    // Lost: published to the room (after everyone joined) and never received; duplicated: received twice.
    let lost = 0
    let duplicated = 0
    for (const { state } of clients) {
      const unique = new Set(state.received)
      duplicated += state.received.length - unique.size
      for (let n = 1; n <= (msg.sent[state.room] ?? 0); n++) if (!unique.has(n)) lost++
    }
    process.send({
      rid: msg.rid,
      lost,
      duplicated,
      received: clients.reduce((sum, c) => sum + c.state.received.length, 0),
      closes: clients.map((c) => c.state.closedAt),
      codes: clients.map((c) => c.state.closeCode),
      reopens: clients.map((c) => c.state.reopenedAt),
      recoveries: clients.map((c) => c.state.recoveredAt),
      recoveredOk: clients.filter((c) => c.state.recovered === true).length
    })
  } else if (msg.cmd === 'exit') {
    for (const { client } of clients) client.close()
    setTimeout(() => process.exit(0), 200)
  }
})
process.send({ ready: true })
