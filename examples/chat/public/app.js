// The chat page: the fastify-ws-rooms client loaded as a plain ES module from /client/.
//
// Who: on first load the page asks for a name and keeps it in localStorage, with a random key
// made once per browser; it connects with the token `<key>.<name as base64url>`, which the
// server's `authenticate` turns into the user { id, name } (see identity.ts).
// Where: the room in the URL's #fragment, else the last one visited, else "lobby"; the rooms
// visited are listed on the left, and any other can be joined from there.
// What: entering a room loads its newest messages over REST (older ones on demand); messages are
// posted with the server's `post` request type (stored with the server's time, then pushed to every
// member, the sender too). After a reconnect the client rejoins the room and recovers the pushes it
// missed from the server's room history; when it cannot (`recovery` with recovered: false) the
// page says so and reloads the room over REST. The member list comes from the client's presence view.
// Text from the network only ever goes through textContent.
import { connect } from '/client/index.js'

const DEFAULT_ROOM = 'lobby'
const PAGE_SIZE = 50 // the history endpoint's default
const MAX_NAME_LENGTH = 32
const GROUP_WITHIN_MS = 5 * 60 * 1000
// The server's rule for names (identity.ts): it refuses the connection otherwise.
const UNSHOWABLE = /[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u

const $ = (id) => document.getElementById(id)
const status = $('status')
const roomName = $('room-name')
const roomList = $('room-list')
const joinForm = $('join-form')
const roomInput = $('room')
const scroller = $('scroller')
const olderButton = $('older')
const empty = $('empty')
const log = $('log')
const sendForm = $('send-form')
const textInput = $('text')
const sendButton = $('send')
const memberCount = $('member-count')
const memberList = $('member-list')
const meName = $('me-name')
const changeName = $('change-name')
const nameDialog = $('name-dialog')
const nameForm = $('name-form')
const nameInput = $('name')
const nameError = $('name-error')
const nameCancel = $('name-cancel')

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' })
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' })

// ---- What the browser remembers (an in-memory stand-in when storage is blocked) ----

const memory = new Map()
const store = {
  get (key) {
    try { return localStorage.getItem(key) } catch { return memory.get(key) ?? null }
  },
  set (key, value) {
    try { localStorage.setItem(key, value) } catch { memory.set(key, value) }
  }
}

function browserKey () {
  let key = store.get('chat.key')
  if (key === null || !/^[0-9a-f]{32}$/.test(key)) {
    key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')
    store.set('chat.key', key)
  }
  return key
}

function nameProblem (name) {
  if (name === '') return 'Please enter a name.'
  if ([...name].length > MAX_NAME_LENGTH) return `At most ${MAX_NAME_LENGTH} characters, please.`
  if (UNSHOWABLE.test(name)) return 'That name has characters that cannot be shown.'
  return undefined
}

function base64url (text) {
  let binary = ''
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function visitedRooms () {
  try {
    const rooms = JSON.parse(store.get('chat.rooms') ?? '[]')
    if (Array.isArray(rooms)) return rooms.filter((r) => typeof r === 'string' && r !== '').slice(-50)
  } catch {}
  return []
}

function roomFromHash () {
  try {
    return decodeURIComponent(window.location.hash.slice(1)).trim()
  } catch {
    return ''
  }
}

// ---- State ----

let name = store.get('chat.name')
if (name !== null && nameProblem(name) !== undefined) name = null
const key = browserKey()
let client = null
let current = null // the room shown
const rooms = visitedRooms()
let entries = [] // what the log shows, in order: { kind: 'chat', message } or { kind, text }
const seen = new Set() // stored message ids: history and live pushes overlap after a join
let reloading = null // pushes that arrive while the room is (re)loaded over REST wait here
let moves = Promise.resolve() // room changes, one after the other

// ---- Rendering ----

// A few hues far enough apart to tell people apart at a glance; each user keeps theirs.
const HUES = [211, 4, 145, 28, 268, 187, 330, 96]

function hue (id) {
  let h = 0
  for (const ch of id) h = (h * 31 + ch.codePointAt(0)) >>> 0
  return HUES[h % HUES.length]
}

function avatar (user, className = 'avatar') {
  const span = document.createElement('span')
  span.className = className
  span.setAttribute('aria-hidden', 'true')
  span.style.setProperty('--hue', hue(user.id))
  span.textContent = [...(user.name ?? user.id)][0]?.toUpperCase() ?? '?'
  return span
}

function dayLabel (date) {
  const today = new Date()
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1)
  if (date.toDateString() === today.toDateString()) return 'Today'
  if (date.toDateString() === yesterday.toDateString()) return 'Yesterday'
  return dayFormat.format(date)
}

/** When a message was stored (the server's time); a message that was not stored has none. */
function sentAt (message) {
  const at = new Date(message.createdAt)
  return Number.isNaN(at.getTime()) ? undefined : at
}

/**
 * The list items for `entry`. `previous` is the entry shown just before it and `lastChat` the
 * last message before it: a message continues its author's group when nothing came between and
 * it is within a few minutes; a new day starts with a separator.
 */
function render (entry, previous, lastChat) {
  if (entry.kind !== 'chat') {
    const li = document.createElement('li')
    li.className = entry.kind
    li.textContent = entry.text
    return [li]
  }
  const { message } = entry
  const nodes = []
  const at = sentAt(message)
  const lastAt = lastChat === undefined ? undefined : sentAt(lastChat.message)
  const newDay = at !== undefined && (lastAt === undefined || lastAt.toDateString() !== at.toDateString())
  if (newDay) {
    const day = document.createElement('li')
    day.className = 'day'
    day.textContent = dayLabel(at)
    nodes.push(day)
  }
  const grouped = !newDay && previous === lastChat && lastChat !== undefined &&
    lastChat.message.user.id === message.user.id && lastChat.message.user.name === message.user.name && at !== undefined && lastAt !== undefined && at - lastAt < GROUP_WITHIN_MS

  const li = document.createElement('li')
  li.className = 'chat' + (message.user.id === client?.user?.id ? ' mine' : '') + (grouped ? ' grouped' : '')
  if (message.id !== undefined) li.dataset.id = message.id
  li.append(avatar(message.user))
  const body = document.createElement('div')
  body.className = 'body'
  const meta = document.createElement('div')
  meta.className = 'meta'
  const who = document.createElement('span')
  who.className = 'who'
  who.textContent = message.user.name ?? message.user.id
  meta.append(who)
  if (at !== undefined) {
    const time = document.createElement('time')
    time.dateTime = message.createdAt
    time.title = fullFormat.format(at)
    time.textContent = timeFormat.format(at)
    meta.append(time)
  }
  const text = document.createElement('div')
  text.className = 'text'
  text.textContent = message.text
  body.append(meta, text)
  li.append(body)
  nodes.push(li)
  return nodes
}

function nearBottom () {
  return scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 24
}

function updateEmpty () {
  const none = !entries.some((e) => e.kind === 'chat') && reloading === null
  empty.hidden = !none || current === null
  empty.textContent = `No messages in #${current} yet. Say hello!`
}

function redraw () {
  const nodes = []
  let lastChat
  entries.forEach((entry, i) => {
    nodes.push(...render(entry, entries[i - 1], lastChat))
    if (entry.kind === 'chat') lastChat = entry
  })
  log.replaceChildren(...nodes)
  updateEmpty()
}

function add (entry) {
  const stick = nearBottom()
  const lastChat = entries.findLast((e) => e.kind === 'chat')
  log.append(...render(entry, entries.at(-1), lastChat))
  entries.push(entry)
  updateEmpty()
  if (stick || (entry.kind === 'chat' && entry.message.user.id === client?.user?.id)) scroller.scrollTop = scroller.scrollHeight
}

function note (kind, text) {
  add({ kind, text })
}

/** A stored message: a history row ({ user, name }) or a push ({ user: { id, name } }). */
function normalise (message) {
  const user = typeof message.user === 'string' ? { id: message.user, name: message.name ?? message.user } : message.user
  return { ...message, user }
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
  add({ kind: 'chat', message: normalise(message) })
}

function setStatus (state, text) {
  status.dataset.state = state
  status.textContent = text
  const usable = state === 'open' && current !== null
  textInput.disabled = !usable
  sendButton.disabled = !usable
}

function showRooms () {
  roomList.replaceChildren(...rooms.map((room) => {
    const li = document.createElement('li')
    const button = document.createElement('button')
    button.type = 'button'
    button.textContent = room
    if (room === current) button.setAttribute('aria-current', 'page')
    button.addEventListener('click', () => { window.location.hash = encodeURIComponent(room) })
    li.append(button)
    return li
  }))
}

function showMembers (view) {
  if (view === undefined) {
    memberCount.textContent = ''
    memberList.replaceChildren()
    return
  }
  memberCount.textContent = `${view.size} online`
  const me = client?.user?.id
  const members = [...view.members].sort((a, b) =>
    (b.id === me) - (a.id === me) || String(a.name ?? a.id).localeCompare(String(b.name ?? b.id)))
  memberList.replaceChildren(...members.map((user) => {
    const li = document.createElement('li')
    if (user.id === me) li.className = 'me'
    const label = document.createElement('span')
    label.className = 'member-name'
    label.textContent = user.name ?? user.id
    li.append(avatar(user), label)
    if (user.id === me) {
      const you = document.createElement('span')
      you.className = 'you'
      you.textContent = '(you)'
      li.append(' ', you)
    }
    return li
  }))
  if (!view.complete) {
    const li = document.createElement('li')
    li.className = 'more'
    li.textContent = `and ${view.size - view.members.length} more`
    memberList.append(li)
  }
}

function showMe () {
  meName.textContent = name ?? ''
  $('me-avatar').replaceWith(Object.assign(avatar({ id: client?.user?.id ?? '', name: name ?? '?' }), { id: 'me-avatar', hidden: name === null }))
  changeName.hidden = name === null
}

// ---- History over REST ----

async function fetchHistory (room, before) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) })
  if (before !== undefined) query.set('before', String(before))
  const res = await fetch('/api/rooms/' + encodeURIComponent(room) + '/messages?' + query)
  if (!res.ok) throw new Error('history: HTTP ' + res.status)
  return await res.json()
}

/** Show the room from the REST endpoint, then the pushes that arrived meanwhile (each once). */
async function loadHistory (room) {
  entries = []
  seen.clear()
  olderButton.hidden = true
  redraw()
  const early = (reloading = [])
  let messages = []
  try {
    messages = await fetchHistory(room)
  } finally {
    if (reloading === early) {
      reloading = null
      if (room === current) {
        for (const m of messages) seen.add(m.id)
        entries = messages.map((m) => ({ kind: 'chat', message: normalise(m) }))
        olderButton.hidden = messages.length < PAGE_SIZE
        redraw()
        for (const m of early) showMessage(m)
        scroller.scrollTop = scroller.scrollHeight
      }
    }
  }
}

olderButton.addEventListener('click', async () => {
  const room = current
  const oldest = entries.find((e) => e.kind === 'chat')?.message.id
  if (oldest === undefined) return
  olderButton.disabled = true
  try {
    const older = (await fetchHistory(room, oldest)).filter((m) => !seen.has(m.id))
    if (room !== current) return
    for (const m of older) seen.add(m.id)
    const fromBottom = scroller.scrollHeight - scroller.scrollTop
    entries = [...older.map((m) => ({ kind: 'chat', message: normalise(m) })), ...entries]
    redraw()
    scroller.scrollTop = scroller.scrollHeight - fromBottom
    olderButton.hidden = older.length < PAGE_SIZE
  } catch (err) {
    note('error', err.message)
  } finally {
    olderButton.disabled = false
  }
})

// ---- The connection ----

function start () {
  // Relative URL: resolved against the page (ws: or wss: to match http: or https:). The token
  // travels as a subprotocol, not in the URL; it is made again before every connection attempt.
  const own = connect('/ws', { token: () => `${key}.${base64url(name)}` })
  client = own
  const on = (event, listener) => own.on(event, (...args) => { if (client === own) listener(...args) })
  on('state', (state) => {
    if (state === 'connecting') setStatus(state, 'Connecting…')
    else if (state === 'open') setStatus(state, 'Connected')
    else if (state === 'closed') setStatus(state, 'Offline')
  })
  on('open', () => showMe())
  on('reconnecting', ({ attempt, delayMs }) => {
    setStatus('reconnecting', `Reconnecting${attempt > 1 ? ` (attempt ${attempt})` : ''} in ${Math.max(1, Math.round(delayMs / 1000))} s…`)
  })
  on('recovery', ({ room, recovered, missed }) => {
    if (room !== current) return
    if (recovered) {
      // The pushes missed while away came before this event, each once.
      note('system', missed === 0 ? 'Reconnected' : `Reconnected (${missed} missed message${missed === 1 ? '' : 's'} delivered)`)
      return
    }
    // The server could not replay what we missed (it restarted, or we were away too long).
    loadHistory(room)
      .then(() => note('notice', 'Reconnected: some messages could not be recovered, the room was reloaded'))
      .catch((err) => note('error', err.message))
  })
  on('presence', (view) => {
    if (view.room === current) showMembers(view)
  })
  on('close', ({ error }) => {
    if (error) note('error', `Connection closed: ${error.message}`)
  })
  on('chat', (message) => {
    if (message.room === current) showMessage(message)
  })
  on('system', (event) => {
    if (event.room !== current) return
    const me = own.user?.id
    const names = (users) => users.filter((u) => u.id !== me).map((u) => u.name ?? u.id).join(', ')
    let joined = ''
    let left = ''
    if (event.event === 'join') joined = names([event.user])
    else if (event.event === 'leave') left = names([event.user])
    else if (event.event === 'presence') {
      joined = names(event.joined ?? [])
      left = names(event.left ?? [])
    }
    if (joined !== '') note('system', `${joined} joined`)
    if (left !== '') note('system', `${left} left`)
  })
  on('error', (err) => note('error', `${err.code}: ${err.message}`))
  setStatus('connecting', 'Connecting…')
  return own
}

/** Show and join `room`, leaving the one shown before. */
function enter (room) {
  if (room === current) return
  const previous = current
  current = room
  // The lobby first, then the rooms in the order they were first visited: the list does not jump.
  if (!rooms.includes(DEFAULT_ROOM)) rooms.unshift(DEFAULT_ROOM)
  if (!rooms.includes(room)) rooms.push(room)
  store.set('chat.rooms', JSON.stringify(rooms))
  store.set('chat.room', room)
  if (roomFromHash() !== room) window.history.replaceState(null, '', '#' + encodeURIComponent(room))
  document.title = `#${room} · Chat`
  roomName.textContent = '# ' + room
  textInput.placeholder = `Message #${room}`
  showRooms()
  showMembers(undefined)
  entries = []
  redraw()
  moves = moves.then(() => move(client, previous, room))
}

/** Whether the user is typing in another field (the room box, say): the composer must not take the focus, or the keys still to come land in it. */
function typingElsewhere () {
  const active = document.activeElement
  return active !== null && active !== textInput && (active.tagName === 'INPUT' || active.tagName === 'TEXTAREA')
}

async function move (own, previous, room) {
  try {
    if (previous !== null && own.rooms.has(previous)) await own.leave(previous)
    if (room !== current || own !== client) return
    await own.join(room)
    if (room !== current) return // moved on meanwhile: the next move leaves it
    showMembers(own.presence(room)) // usually not loaded yet: the presence event follows
    setStatus(own.state, status.textContent)
    await loadHistory(room)
    if (!nameDialog.open && !typingElsewhere()) textInput.focus()
  } catch (err) {
    if (own === client) note('error', `${err.code ?? 'error'}: ${err.message}`)
  }
}

// ---- Forms ----

joinForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const room = roomInput.value.trim()
  if (room === '') return
  roomInput.value = ''
  if (client === null) return // joins once a name is picked
  window.location.hash = encodeURIComponent(room)
  enter(room) // also when the hash already said so
})

window.addEventListener('hashchange', () => {
  const room = roomFromHash()
  if (room !== '' && client !== null) enter(room)
})

sendForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const text = textInput.value
  if (text.trim() === '' || current === null) return
  textInput.value = ''
  try {
    const saved = await client.request('post', { room: current, text })
    showMessage(saved) // usually already shown by the push; `seen` keeps it once
  } catch (err) {
    if (textInput.value === '') textInput.value = text
    note('error', `Not sent (${err.code ?? 'error'}): ${err.message}`)
  }
})

function askName () {
  nameInput.value = name ?? ''
  nameError.textContent = ''
  nameCancel.hidden = name === null
  nameDialog.showModal()
  nameInput.select()
}

changeName.addEventListener('click', askName)
nameCancel.addEventListener('click', () => nameDialog.close())
nameDialog.addEventListener('cancel', (event) => {
  if (name === null) event.preventDefault() // a name is needed to connect
})

/** Go by `picked` from now on: a name is part of the connection's user, so connect again. */
async function useName (picked) {
  if (picked === name && client !== null) return
  name = picked
  store.set('chat.name', name)
  showMe()
  const previous = client
  const room = current ?? (roomFromHash() || store.get('chat.room') || DEFAULT_ROOM)
  current = null
  start()
  if (previous !== null) await previous.close()
  enter(room)
}

nameForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const picked = nameInput.value.trim()
  const problem = nameProblem(picked)
  if (problem !== undefined) {
    nameError.textContent = problem
    return
  }
  nameDialog.close()
  useName(picked)
})

// Another tab of this browser picked a name: it is this tab's user too.
window.addEventListener('storage', (event) => {
  if (event.key !== 'chat.name' || event.newValue === null || nameProblem(event.newValue) !== undefined) return
  if (nameDialog.open) nameDialog.close()
  useName(event.newValue)
})

// ---- Start ----

showRooms()
showMe()
if (name === null) {
  askName()
} else {
  start()
  enter(roomFromHash() || store.get('chat.room') || DEFAULT_ROOM)
}
