// The lobby page: logs in as ?name= (the demo login), connects with the browser client, and
// shows what happens: who joins and leaves, messages, and each token refreshed in place.
import { connect } from '/client/index.js'

const name = new URLSearchParams(window.location.search).get('name') ?? 'guest'
const log = document.getElementById('log')

function line (text, kind) {
  const item = document.createElement('li')
  item.textContent = text // never HTML: names and messages come from other people
  item.className = kind
  log.append(item)
}

async function login () {
  const res = await fetch('/api/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
  if (!res.ok) throw new Error(`login failed: HTTP ${res.status}`)
  return (await res.json()).token
}

// A token function, not a token: called for every connection and before each token expires.
const client = connect('/ws', { token: login })
client.on('open', ({ user, reconnected }) => line(reconnected ? 'reconnected' : `connected as ${user.name ?? user.id}`, 'open'))
client.on('close', ({ code, reason }) => line(`connection closed: ${code} ${reason}`, 'close'))
client.on('session', ({ expiresAt }) => line(`token refreshed in place, valid until ${new Date(expiresAt).toLocaleTimeString()}`, 'session'))
client.on('system', (m) => {
  if (m.event === 'join' || m.event === 'leave') line(`${m.user.name ?? m.user.id} ${m.event === 'join' ? 'joined' : 'left'} ${m.room}`, m.event)
})
client.on('chat', (m) => line(`${m.user.name ?? m.user.id}: ${m.text}`, 'chat'))
client.on('error', (err) => line(`${err.code}: ${err.message}`, 'error'))

document.getElementById('say').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = document.getElementById('text')
  if (input.value === '') return
  client.send('lobby', input.value).catch((err) => line(`not sent: ${err.message}`, 'error'))
  line(`${name}: ${input.value}`, 'chat')
  input.value = ''
})

await client.join('lobby')
