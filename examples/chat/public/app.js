// The chat page: the fastify-ws-rooms client loaded as a plain ES module from /client/.
// Joining a room loads its history over REST; messages are posted with the server's `post`
// request type (stored, then pushed to every member, the sender too). After a reconnect the
// client rejoins the room and recovers the pushes it missed from the server's room history; when
// it cannot (`recovery` with recovered: false), the page says so and reloads the room over REST.
// The member list and count come from the client's presence view.
// Text from the network only ever goes through textContent.
import { connect } from '/client/index.js'

const status = document.getElementById('status')
const roomName = document.getElementById('room-name')
const log = document.getElementById('log')
const joinForm = document.getElementById('join-form')
const roomInput = document.getElementById('room')
const sendForm = document.getElementById('send-form')
const textInput = document.getElementById('text')
const sendButton = document.getElementById('send')
const memberCount = document.getElementById('member-count')
const memberList = document.getElementById('member-list')

let client = null
let current = null
const seen = new Set() // stored message ids: history and live pushes overlap after a join
let reloading = null // pushes that arrive while the room is (re)loaded over REST wait here

function show (kind, who, text, mine = false) {
  const li = document.createElement('li')
  li.className = kind + (mine ? ' mine' : '')
  if (who) {
    const name = document.createElement('span')
    name.className = 'who'
    name.textContent = who
    li.append(name)
  }
  li.append(document.createTextNode(text))
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4
  log.append(li)
  if (atBottom) log.scrollTop = log.scrollHeight
}

function showMessage (message) {
  if (reloading !== null) {
    reloading.push(message)
    return
  }
  if (message.id !== undefined) {
    if (seen.has(message.id)) return
    seen.add(message.id)
  }
  const author = typeof message.user === 'string' ? message.user : message.user?.id
  const mine = client?.user !== undefined && author === client.user.id
  show('chat', mine ? 'you' : author, message.text, mine)
}

function setStatus (state, text) {
  status.dataset.state = state
  status.textContent = text
  const usable = state === 'open' && current !== null
  textInput.disabled = !usable
  sendButton.disabled = !usable
}

/** Show the room from the REST endpoint, then the pushes that arrived meanwhile (each once). */
async function loadHistory (room) {
  log.replaceChildren()
  seen.clear()
  const early = (reloading = [])
  let messages = []
  try {
    const res = await fetch('/api/rooms/' + encodeURIComponent(room) + '/messages')
    if (!res.ok) throw new Error('history: HTTP ' + res.status)
    messages = await res.json()
  } finally {
    if (reloading === early) {
      reloading = null
      if (room === current) for (const m of [...messages, ...early]) showMessage(m)
    }
  }
}

function showMembers (view) {
  if (view === undefined) {
    memberCount.textContent = ''
    memberList.replaceChildren()
    return
  }
  memberCount.textContent = `${view.size} online`
  memberList.replaceChildren(...view.members.map((user) => {
    const li = document.createElement('li')
    li.textContent = user.id === client.user?.id ? `${user.id} (you)` : user.id
    return li
  }))
}

function start () {
  // Relative URL: resolved against the page (ws: or wss: to match http: or https:). No token here;
  // with `authenticate` on the server, pass { token } and it travels as a subprotocol, not in the URL.
  client = connect('/ws')
  client.on('state', (state) => {
    if (state === 'connecting') setStatus(state, 'Connecting…')
    else if (state === 'open') setStatus(state, 'Connected as ' + client.user.id)
    else if (state === 'closed') setStatus(state, 'Disconnected')
  })
  client.on('reconnecting', ({ attempt, delayMs }) => {
    setStatus('reconnecting', `Reconnecting (attempt ${attempt}, in ${Math.round(delayMs / 100) / 10} s)…`)
  })
  client.on('recovery', ({ room, recovered, missed }) => {
    if (room !== current) return
    if (recovered) {
      // The pushes missed while away came before this event, each once.
      show('system', '', missed === 0 ? 'Reconnected' : `Reconnected (${missed} missed message${missed === 1 ? '' : 's'} delivered)`)
      return
    }
    // The server could not replay what we missed (it restarted, or we were away too long).
    loadHistory(room)
      .then(() => show('notice', '', 'Reconnected: some messages could not be recovered, the room was reloaded'))
      .catch((err) => show('error', '', err.message))
  })
  client.on('presence', (view) => {
    if (view.room === current) showMembers(view)
  })
  client.on('close', ({ error }) => {
    if (error) show('error', '', `Connection closed: ${error.message}`)
  })
  client.on('chat', (message) => {
    if (message.room === current) showMessage(message)
  })
  client.on('system', (event) => {
    if (event.room !== current || event.user.id === client.user?.id) return
    show('system', '', `${event.user.id} ${event.event === 'join' ? 'joined' : 'left'}`)
  })
  client.on('error', (err) => show('error', '', `${err.code}: ${err.message}`))
  setStatus('connecting', 'Connecting…')
}

joinForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const room = roomInput.value.trim()
  if (room === '' || room === current) return
  // Connect on the first join: a socket that never sends a frame is closed by the server.
  if (client === null) start()
  const previous = current
  current = room
  roomName.textContent = '# ' + room
  log.replaceChildren()
  seen.clear()
  showMembers(undefined)
  try {
    if (previous !== null) await client.leave(previous)
    await client.join(room)
    showMembers(client.presence(room)) // usually not loaded yet: the presence event follows
    setStatus(client.state, status.textContent)
    await loadHistory(room)
    textInput.focus()
  } catch (err) {
    show('error', '', `${err.code ?? 'error'}: ${err.message}`)
  }
})

sendForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const text = textInput.value
  if (text === '' || current === null) return
  textInput.value = ''
  try {
    const saved = await client.request('post', { room: current, text })
    if (saved?.error) throw Object.assign(new Error(saved.error.text), { code: saved.error.code })
    showMessage(saved) // usually already shown by the push; `seen` keeps it once
  } catch (err) {
    textInput.value = text
    show('error', '', `not sent (${err.code ?? 'error'}): ${err.message}`)
  }
})
