// What checking a handler's result costs: one room of 1000 members; one member sends requests, a
// window of 8 in flight; each request's handler broadcasts one frame to the room and returns a
// small object. `handle` (no result check) against `implement` (result checked by its compiled
// schema), alternating, in rounds; the server's CPU time per request. `--no-fanout`: the handler
// does not broadcast (the check's cost against a bare request).
//   npm run build && node bench/typed/result-check.mjs [--no-fanout] [--requests 20000] [--rounds 3]
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const fanout = !process.argv.includes('--no-fanout')
const REQUESTS = arg('--requests', 20000)
const ROUNDS = arg('--rounds', 3)
const MEMBERS = arg('--members', 1000)
const WINDOW = 8

const server = fork(fileURLToPath(new URL('./server.mjs', import.meta.url)), [fanout ? 'fanout' : 'no-fanout'])
const [{ port }] = await once(server, 'message')
const url = `ws://127.0.0.1:${port}/ws`
const cpu = async () => { server.send('cpu'); const [m] = await once(server, 'message'); return m.cpu.user + m.cpu.system }

async function open () {
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => {
    ws.on('message', function first (data) { if (JSON.parse(data).event === 'welcome') { ws.off('message', first); resolve() } })
    ws.on('error', reject)
  })
  return ws
}
async function joined (ws) {
  ws.send(JSON.stringify({ type: 'join', room: 'r', id: 'j' }))
  await new Promise((resolve) => ws.on('message', function ack (data) { if (JSON.parse(data).id === 'j') { ws.off('message', ack); resolve() } }))
}

const members = []
for (let i = 0; i < MEMBERS; i++) members.push(await open())
await Promise.all(members.map(joined))
const sender = members[0]

async function run (type) {
  let sent = 0
  let acked = 0
  return await new Promise((resolve, reject) => {
    const send = () => { sender.send(JSON.stringify({ type, room: 'r', text: 'hello there', id: sent++ })) }
    const onMessage = (data) => {
      const frame = JSON.parse(data)
      if (frame.type === 'error') { reject(new Error(JSON.stringify(frame))); return }
      if (frame.type !== 'ack') return
      acked++
      if (sent < REQUESTS) send()
      if (acked === REQUESTS) { sender.off('message', onMessage); resolve() }
    }
    sender.on('message', onMessage)
    for (let i = 0; i < WINDOW; i++) send()
  })
}

const results = { handle: [], implement: [] }
await run('plain') // warm up both paths
await run('checked')
for (let round = 0; round < ROUNDS; round++) {
  // Which goes first alternates: the one after pays for the garbage the one before left.
  const pair = [['handle', 'plain'], ['implement', 'checked']]
  for (const [name, type] of round % 2 === 0 ? pair : pair.reverse()) {
    const before = await cpu()
    await run(type)
    results[name].push((await cpu() - before) / REQUESTS)
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const h = median(results.handle)
const i = median(results.implement)
console.log(`members ${MEMBERS}, fan-out ${fanout}, ${REQUESTS} requests x ${ROUNDS} rounds`)
console.log(`server CPU per request: handle ${h.toFixed(1)} µs, implement ${i.toFixed(1)} µs (${(i - h).toFixed(1)} µs, ${((i / h - 1) * 100).toFixed(1)}%)`)
for (const ws of members) ws.terminate()
server.send('stop')
await once(server, 'exit')
process.exit(0)
