// The rooms client: one logical session over a succession of WebSockets. It matches acks to
// calls by id, rejoins rooms after a reconnect (recovering what history rooms published meanwhile,
// stream-positions.ts), keeps a presence view per room (presence-views.ts), queues calls made while
// disconnected (bounded, sent once), and decides from close codes and handshake failures whether
// to come back. Rooms the server moves it into or out of (`added` / `removed`) are followed too.
// Plain ES2022 with no imports at runtime beyond its siblings, so it runs unbundled in browsers.
import type {
  AppSpec,
  ConnectionState,
  ConnectOptions,
  RequestOptions,
  RoomPresence,
  UntypedApp,
  WebSocketConstructorLike,
  WebSocketLike
} from '../../types/client.js'
import type { MembersAckData, RoomUser, WelcomeEvent } from '../../types/protocol.js'
import { Emitter } from './emitter.js'
import { eventChecker, type EventCheck } from './event-check.js'
import { RoomsClientError, upgradeRefusedError } from './errors.js'
import {
  backoffDelay,
  handshakeVerdict,
  networkErrorOf,
  normalizeReconnect,
  reconnectDefaults,
  reconnectsAtOnce,
  isRestartClose,
  normalizeRestartJitter,
  restartDelay,
  shouldReconnect,
  statusOfError,
  type NormalizedReconnect
} from './policy.js'
import { PresenceViews } from './presence-views.js'
import { normalizeRefresh, SessionRefresh } from './session-refresh.js'
import { StreamPositions } from './stream-positions.js'

export const PROTOCOL = 'rooms.v1' as const

const OPEN = 1
const CLOSED = 3
/** A connection that stayed up this long resets the backoff: it was not a crash loop. */
const STABLE_AFTER_MS = 5000
/** Characters allowed in a subprotocol name (an HTTP token, RFC 9110). */
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Event names the client emits itself: a server frame of such a type only reaches 'message'. */
const RESERVED = new Set(['open', 'close', 'reconnecting', 'state', 'chat', 'system', 'error', 'message', 'ack', 'recovery', 'presence', 'membership', 'rejoined'])

interface Pending {
  id: number
  type: string
  data: string
  /** The room the frame names, if any: it waits while that room is being rejoined. */
  room: string | undefined
  sent: boolean
  timer: ReturnType<typeof setTimeout> | undefined
  resolve: (value: any) => void
  reject: (error: Error) => void
  onAck?: (data: unknown) => void
}

interface Attempt {
  socket: WebSocketLike
  opened: boolean
  welcomed: boolean
  openedAt: number
  error: unknown
}

function positive (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new TypeError(`${name} must be a number >= 0`)
  return value
}

function resolveUrl (url: string | URL): URL {
  const base = (globalThis as { location?: { href?: string } }).location?.href
  let resolved: URL
  try {
    resolved = new URL(String(url), base)
  } catch (err) {
    // In a page a relative URL resolves against the page; in Node there is nothing to resolve it against.
    throw new TypeError(base === undefined
      ? `connect() needs an absolute URL here, such as ws://localhost:3000/ws: ${JSON.stringify(String(url))} is not one, and outside a web page (in Node) a relative URL has nothing to be resolved against`
      : `connect(): ${JSON.stringify(String(url))} is not a valid URL`, { cause: err })
  }
  if (resolved.protocol === 'http:') resolved.protocol = 'ws:'
  else if (resolved.protocol === 'https:') resolved.protocol = 'wss:'
  if (resolved.protocol !== 'ws:' && resolved.protocol !== 'wss:') {
    throw new TypeError(`connect(): unsupported URL scheme ${JSON.stringify(resolved.protocol)} in ${JSON.stringify(String(url))}: use ws://, wss://, http:// or https://, as in ws://localhost:3000/ws`)
  }
  return resolved
}

/** Reports an error nothing should have thrown the way the platform reports uncaught errors. */
function report (err: unknown): void {
  queueMicrotask(() => { throw err })
}

// App only types the public declaration (types/client.d.ts); the runtime is the same for all.
// eslint-disable-next-line @typescript-eslint/no-unused-vars
export class RoomsClient<App extends AppSpec = UntypedApp> {
  readonly url: string

  readonly #WebSocket: WebSocketConstructorLike
  readonly #token: ConnectOptions['token']
  readonly #tokenTransport: 'protocol' | 'query'
  readonly #protocols: string[]
  readonly #reconnect: NormalizedReconnect | false
  readonly #restartJitterMs: number
  readonly #requestTimeoutMs: number
  readonly #connectTimeoutMs: number
  readonly #maxQueuedFrames: number
  readonly #events = new Emitter()
  readonly #presenceOption: NonNullable<ConnectOptions['presence']>
  readonly #positions = new StreamPositions()
  readonly #presence = new PresenceViews()
  /** Rooms whose rejoin was refused with `unavailable` (Redis down), waiting to try again. */
  readonly #rejoinRetries = new Map<string, ReturnType<typeof setTimeout>>()
  /** Rooms of `#rooms` not rejoined yet on this connection; calls naming them wait in the queue. */
  readonly #rejoining = new Set<string>()
  /** A rejoin's request on the wire, by room: resolves true when the server took it. */
  readonly #rejoinsInFlight = new Map<string, Promise<boolean>>()
  /** Leave calls not answered yet, by room: an `added` sent before the server handled them is stale. */
  readonly #leaving = new Map<string, number>()

  #state: ConnectionState = 'connecting'
  #attempt: Attempt | undefined
  #connectTimer: ReturnType<typeof setTimeout> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  /** Open, welcomed and rejoined: calls go straight to the socket. */
  #ready = false
  #everOpened = false
  /** Failed attempts since the last open: bounded by maxAttempts, reported as `attempt`. */
  #failures = 0
  /** Exponent of the backoff: reset only by a connection that stayed up, so a crash loop slows down. */
  #backoffStep = 0
  #handshakeFailures = 0
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  #queue: Pending[] = []
  readonly #rooms = new Set<string>()
  /** Last join/leave call per room, so a late join ack cannot resurrect a room left meanwhile. */
  readonly #roomIntent = new Map<string, number>()
  #intentCounter = 0
  #connectionId: string | undefined
  #user: RoomUser | undefined
  #closeWaiters: Array<() => void> = []
  /** Why the client closed for good (a refused upgrade, given up reconnecting, ...); undefined after close(). */
  #closedBy: RoomsClientError | undefined
  /** Renews the session ahead of expiresAt (session-refresh.ts); undefined without a token function. */
  readonly #sessionRefresh: SessionRefresh | undefined
  /** `messages.events` checks (connect's `messages` option); undefined without it. */
  readonly #eventCheck: EventCheck | undefined

  constructor (url: string | URL, options: ConnectOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
    const resolved = resolveUrl(url)
    this.url = resolved.href
    const Impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket
    if (typeof Impl !== 'function') {
      throw new TypeError('no WebSocket implementation: pass one as the WebSocket option (e.g. the `ws` package in Node 20)')
    }
    this.#WebSocket = Impl
    this.#eventCheck = eventChecker(options.messages)
    const token = options.token
    if (token !== undefined && typeof token !== 'string' && typeof token !== 'function') throw new TypeError('token must be a string or a function')
    this.#tokenTransport = options.tokenTransport ?? 'protocol'
    if (this.#tokenTransport !== 'protocol' && this.#tokenTransport !== 'query') throw new TypeError("tokenTransport must be 'protocol' or 'query'")
    if (typeof token === 'string') this.#checkToken(token)
    this.#token = token
    const refresh = normalizeRefresh(options.refresh)
    this.#sessionRefresh = typeof token === 'function' && refresh !== false
      ? new SessionRefresh({
        token: async () => { const fresh = await token(); if (typeof fresh !== 'string') throw new TypeError('the token function must return a string'); return fresh },
        send: (fresh) => this.#call({ type: 'refresh', token: fresh }, undefined, undefined, true),
        refreshed: (expiresAt) => { this.#events.emit('session', expiresAt === undefined ? {} : { expiresAt }) },
        failed: (err) => { this.#events.emit('error', err instanceof RoomsClientError ? err : new RoomsClientError('refresh_failed', 'The session could not be refreshed', { cause: err })) }
      }, refresh)
      : undefined
    if (options.protocols !== undefined && (!Array.isArray(options.protocols) || !options.protocols.every((p) => typeof p === 'string'))) {
      throw new TypeError('protocols must be an array of strings')
    }
    this.#protocols = options.protocols ?? []
    this.#reconnect = normalizeReconnect(options.reconnect)
    this.#restartJitterMs = normalizeRestartJitter(options.restartJitterMs)
    this.#requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs, 10000)
    this.#connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, 10000)
    this.#maxQueuedFrames = positive('maxQueuedFrames', options.maxQueuedFrames, 100)
    const presence = options.presence ?? true
    if (typeof presence !== 'boolean' && typeof presence !== 'function') throw new TypeError('presence must be a boolean or a function')
    this.#presenceOption = presence
    // Start on a microtask: listeners added right after connect() see every event.
    queueMicrotask(() => { this.#connect().catch(report) })
  }

  get state (): ConnectionState { return this.#state }
  get connectionId (): string | undefined { return this.#connectionId }
  get user (): RoomUser | undefined { return this.#user }
  get rooms (): ReadonlySet<string> { return new Set(this.#rooms) }

  roomState (room: string): 'joined' | 'rejoining' | undefined {
    if (!this.#rooms.has(room)) return undefined
    return this.#ready && !this.#rejoining.has(room) ? 'joined' : 'rejoining'
  }

  ready (): Promise<void> {
    if (this.#state === 'open') return Promise.resolve()
    if (this.#state === 'closed') return Promise.reject(this.#closedBy ?? new RoomsClientError('closed', 'The client is closed'))
    return new Promise((resolve, reject) => {
      const off = this.#events.on('state', (state: ConnectionState) => {
        if (state === 'open') {
          off()
          resolve()
        } else if (state === 'closed') {
          off()
          reject(this.#closedBy ?? new RoomsClientError('closed', 'The client closed before it was open'))
        }
      })
    })
  }

  join (room: string, options?: RequestOptions): Promise<void> {
    const intent = this.#intend(room)
    // A room being rejoined: this join waits for that rejoin (queued like any call naming the room).
    return this.#call({ type: 'join', room }, options, (data) => {
      if (this.#roomIntent.get(room) !== intent) return
      this.#rooms.add(room)
      this.#positions.joined(room, data)
      if (this.#wantsPresence(room)) this.#loadPresence(room, false)
    }).then(() => undefined)
  }

  leave (room: string, options?: RequestOptions): Promise<void> {
    this.#intend(room)
    const pending = this.#ready && this.#rooms.has(room) && this.#rejoining.has(room)
    this.#rooms.delete(room)
    this.#forgetRoom(room)
    if (pending) {
      // Its rejoin was refused (retried later): the server does not have it, unless a try is on the wire.
      const inFlight = this.#rejoinsInFlight.get(room)
      if (inFlight === undefined) {
        this.#rejoining.delete(room)
        this.#flush()
        return Promise.resolve()
      }
      return inFlight.then((joined) => joined ? this.#leaveCall(room, options) : undefined)
    }
    return this.#leaveCall(room, options)
  }

  #leaveCall (room: string, options: RequestOptions | undefined): Promise<void> {
    this.#leaving.set(room, (this.#leaving.get(room) ?? 0) + 1)
    const done = (): void => {
      const left = (this.#leaving.get(room) ?? 1) - 1
      if (left > 0) this.#leaving.set(room, left)
      else this.#leaving.delete(room)
    }
    const call = this.#call({ type: 'leave', room }, options)
    call.then(done, done)
    return call.then(() => undefined)
  }

  send (room: string, text: string, options?: RequestOptions): Promise<void> {
    return this.#call({ type: 'message', room, text }, options, (data) => {
      // Our own message never comes back as a chat frame: its ack is where its offset is seen.
      const offset = (data as { offset?: unknown } | undefined)?.offset
      if (typeof offset === 'number') this.#positions.sent(room, offset)
    }).then(() => undefined)
  }

  members (room: string, options?: RequestOptions): Promise<MembersAckData> {
    return this.#membersCall(room, options, false)
  }

  presence (room: string): RoomPresence | undefined {
    return this.#presence.get(room)
  }

  request (type: string, payload?: object, options?: RequestOptions): Promise<any> {
    if (typeof type !== 'string' || type.length === 0) return Promise.reject(new TypeError('type must be a non-empty string'))
    if (payload !== undefined && (payload === null || typeof payload !== 'object' || Array.isArray(payload))) {
      return Promise.reject(new TypeError('payload must be an object'))
    }
    return this.#call({ ...payload, type }, options)
  }

  on (event: string, listener: (...args: any[]) => void): () => void {
    return this.#events.on(event, listener)
  }

  once (event: string, listener: (...args: any[]) => void): () => void {
    return this.#events.on(event, listener, true)
  }

  off (event: string, listener: (...args: any[]) => void): void {
    this.#events.off(event, listener)
  }

  close (code = 1000, reason = ''): Promise<void> {
    const attempt = this.#attempt
    const socketDone = attempt === undefined || attempt.socket.readyState === CLOSED
      ? Promise.resolve()
      : new Promise<void>((resolve) => { this.#closeWaiters.push(resolve) })
    if (this.#state !== 'closed') {
      this.#finish(undefined)
      if (attempt !== undefined) {
        try {
          attempt.socket.close(code, reason)
        } catch (err) {
          // An invalid code from the caller: close the socket anyway, then report the mistake.
          attempt.socket.close()
          return socketDone.then(() => { throw err })
        }
      }
    }
    return socketDone
  }

  // ---- Calls ----

  #intend (room: string): number {
    const intent = ++this.#intentCounter
    this.#roomIntent.set(room, intent)
    return intent
  }

  #call (frame: Record<string, unknown>, options: RequestOptions | undefined, onAck?: (data: unknown) => void, direct = false): Promise<any> {
    if (this.#state === 'closed') return Promise.reject(new RoomsClientError('closed', 'The client is closed'))
    const id = this.#nextId++
    let data: string
    let timeoutMs: number
    try {
      timeoutMs = positive('timeoutMs', options?.timeoutMs, this.#requestTimeoutMs)
      data = JSON.stringify({ ...frame, id })
    } catch (err) {
      return Promise.reject(err)
    }
    const type = String(frame.type)
    const room = typeof frame.room === 'string' ? frame.room : undefined
    return new Promise((resolve, reject) => {
      const pending: Pending = { id, type, data, room, sent: false, timer: undefined, resolve, reject }
      if (onAck !== undefined) pending.onAck = onAck
      if (direct || (this.#canSend() && !this.#waits(pending))) {
        this.#pending.set(id, pending)
        this.#transmit(pending)
      } else if (this.#queue.length < this.#maxQueuedFrames) {
        this.#pending.set(id, pending)
        this.#queue.push(pending)
      } else {
        reject(new RoomsClientError('queue_full', `Not connected and ${this.#maxQueuedFrames} calls are already queued: "${type}" was not sent`))
        return
      }
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this.#settle(pending, new RoomsClientError('timeout', `No answer to "${type}" within ${timeoutMs} ms`))
        }, timeoutMs)
      }
    })
  }

  #wantsPresence (room: string): boolean {
    const option = this.#presenceOption
    if (typeof option === 'boolean') return option
    try {
      return option(room) === true
    } catch (err) {
      report(err)
      return false
    }
  }

  /** A `members` request whose answer becomes the room's presence view. */
  #membersCall (room: string, options: RequestOptions | undefined, direct: boolean): Promise<MembersAckData> {
    if (this.#state !== 'closed') this.#presence.loading(room)
    return this.#call({ type: 'members', room }, options, (data) => {
      if (this.#presence.snapshot(room, data as MembersAckData)) this.#emitPresence(room)
    }, direct).catch((err: unknown) => {
      this.#presence.failed(room)
      throw err
    })
  }

  /** The automatic `members` request after a join: its failure is an `error` event, a lost connection is not. */
  #loadPresence (room: string, direct: boolean): void {
    this.#membersCall(room, undefined, direct).catch((err: RoomsClientError) => {
      if (err.code === 'disconnected' || err.code === 'closed' || !this.#rooms.has(room)) return
      this.#events.emit('error', new RoomsClientError(err.code, `Loading the members of "${room}" failed: ${err.message}`, { room, cause: err, ...(err.frame === undefined ? {} : { frame: err.frame }) }))
    })
  }

  #emitPresence (room: string): void {
    const view = this.#presence.get(room)
    if (view !== undefined) this.#events.emit('presence', view)
  }

  #forgetRoom (room: string): void {
    this.#positions.forget(room)
    this.#presence.forget(room)
    this.#cancelRejoinRetry(room)
  }

  #cancelRejoinRetry (room: string): void {
    clearTimeout(this.#rejoinRetries.get(room))
    this.#rejoinRetries.delete(room)
  }

  #canSend (): boolean {
    return this.#ready && this.#attempt !== undefined && this.#attempt.socket.readyState === OPEN
  }

  /** A call naming a room not rejoined yet waits: the server would refuse it as not in the room. */
  #waits (pending: Pending): boolean {
    return pending.room !== undefined && this.#rejoining.has(pending.room)
  }

  /** Send the queued calls that can go now, in order; those naming a room being rejoined stay. */
  #flush (): void {
    if (!this.#canSend()) return
    const queued = this.#queue
    this.#queue = []
    for (const pending of queued) {
      if (this.#pending.get(pending.id) !== pending) continue // settled (timed out) meanwhile
      if (this.#waits(pending)) this.#queue.push(pending)
      else this.#transmit(pending)
    }
  }

  #transmit (pending: Pending): void {
    pending.sent = true
    try {
      this.#attempt?.socket.send(pending.data)
    } catch (err) {
      this.#settle(pending, new RoomsClientError('disconnected', `"${pending.type}" could not be sent`, { cause: err }))
    }
  }

  #settle (pending: Pending, error: Error | undefined, value?: unknown): void {
    if (this.#pending.get(pending.id) !== pending) return
    this.#pending.delete(pending.id)
    if (pending.timer !== undefined) clearTimeout(pending.timer)
    if (!pending.sent) this.#queue = this.#queue.filter((p) => p !== pending)
    if (error !== undefined) {
      pending.reject(error)
    } else {
      pending.onAck?.(value)
      pending.resolve(value)
    }
  }

  // ---- Connection lifecycle ----

  async #connect (): Promise<void> {
    let token: string | undefined
    try {
      token = typeof this.#token === 'function' ? await this.#token() : this.#token
      if (token !== undefined && typeof token !== 'string') throw new TypeError('the token function must return a string')
      if (token !== undefined) this.#checkToken(token)
    } catch (err) {
      if (this.#state === 'closed') return
      const bad = err instanceof TypeError
      this.#failed(undefined, 1006, '', bad ? false : undefined, bad
        ? new RoomsClientError('handshake_refused', err.message, { cause: err })
        : new RoomsClientError('handshake_failed', 'The token function failed', { cause: err }))
      return
    }
    if (this.#state === 'closed') return

    const url = new URL(this.url)
    const protocols: string[] = [PROTOCOL]
    if (token !== undefined && this.#tokenTransport === 'query') url.searchParams.set('token', token)
    if (token !== undefined && this.#tokenTransport === 'protocol') protocols.push(`bearer.${token}`)
    protocols.push(...this.#protocols)

    let socket: WebSocketLike
    try {
      socket = new this.#WebSocket(url.href, protocols)
    } catch (err) {
      this.#failed(undefined, 1006, '', false, new RoomsClientError('handshake_refused', `WebSocket could not be created: ${(err as Error)?.message}`, { cause: err }))
      return
    }
    const attempt: Attempt = { socket, opened: false, welcomed: false, openedAt: 0, error: undefined }
    this.#attempt = attempt
    this.#connectTimer = setTimeout(() => {
      // Abandon it: its own close event, whenever it comes, is ignored.
      this.#attempt = undefined
      try { socket.close() } catch {}
      this.#failed(attempt, 1006, 'connect timeout', true)
    }, this.#connectTimeoutMs)

    socket.addEventListener('open', () => {
      if (this.#attempt !== attempt) return
      attempt.opened = true
      attempt.openedAt = Date.now()
    })
    socket.addEventListener('error', (event: unknown) => {
      attempt.error = event
    })
    socket.addEventListener('message', (event: { data?: unknown }) => {
      if (this.#attempt !== attempt) return
      this.#onFrame(attempt, event.data)
    })
    socket.addEventListener('close', (event: { code?: number, reason?: string }) => {
      const code = typeof event.code === 'number' ? event.code : 1006
      const reason = typeof event.reason === 'string' ? event.reason : ''
      if (this.#attempt === attempt) {
        this.#attempt = undefined
        if (this.#state === 'closed') {
          this.#events.emit('close', { code, reason, willReconnect: false })
        } else {
          this.#failed(attempt, code, reason)
        }
      }
      if (this.#attempt === undefined) {
        for (const resolve of this.#closeWaiters.splice(0)) resolve()
      }
    })
  }

  #onFrame (attempt: Attempt, data: unknown): void {
    if (typeof data !== 'string') return // binary frames are not part of the protocol
    let frame: any
    try {
      frame = JSON.parse(data)
    } catch {
      return
    }
    if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string') return
    // A history room's message seen before (replayed by a recovery that overlapped): dropped unseen.
    // (A system frame's offset, `added`'s, is a position, not a message.)
    if (typeof frame.offset === 'number' && typeof frame.room === 'string' && frame.type !== 'system' && !this.#positions.accept(frame.room, frame.offset)) return
    this.#events.emit('message', frame)
    switch (frame.type) {
      case 'ack': {
        const pending = this.#pending.get(frame.id)
        if (pending !== undefined && pending.sent) this.#settle(pending, undefined, frame.data)
        return
      }
      case 'error': {
        const error = new RoomsClientError(frame.code, typeof frame.text === 'string' ? frame.text : String(frame.code), { frame })
        const pending = frame.id === undefined ? undefined : this.#pending.get(frame.id)
        if (pending !== undefined && pending.sent) this.#settle(pending, error)
        else this.#events.emit('error', error)
        return
      }
      case 'system':
        if (frame.event === 'welcome' && !attempt.welcomed) {
          attempt.welcomed = true
          this.#onWelcome(attempt, frame).catch(report)
        } else if (frame.event === 'added' || frame.event === 'removed') {
          this.#onMembership(frame)
        }
        this.#events.emit('system', frame)
        this.#onPresenceFrame(frame)
        return
      case 'chat':
        this.#events.emit('chat', frame)
        return
      default:
        if (RESERVED.has(frame.type)) return
        if (this.#eventCheck !== undefined) {
          const invalid = this.#eventCheck(frame)
          if (invalid !== undefined) {
            this.#events.emit('error', invalid)
            return
          }
        }
        this.#events.emit(frame.type, frame)
    }
  }

  /** Rooms with a view (joined, or asked about with members()) follow their join/leave and presence frames. */
  #onPresenceFrame (frame: any): void {
    if (typeof frame.room !== 'string') return
    let changed = false
    if (frame.event === 'join' || frame.event === 'leave') changed = this.#presence.change(frame.room, frame.user, frame.event === 'join')
    else if (frame.event === 'presence') changed = this.#presence.batch(frame.room, frame)
    if (changed) this.#emitPresence(frame.room)
  }

  async #onWelcome (attempt: Attempt, welcome: WelcomeEvent): Promise<void> {
    clearTimeout(this.#connectTimer)
    this.#connectTimer = undefined
    this.#connectionId = welcome.connectionId
    this.#user = welcome.user
    this.#sessionRefresh?.schedule(welcome.expiresAt)
    this.#handshakeFailures = 0
    this.#failures = 0
    const reconnected = this.#everOpened
    this.#everOpened = true

    const rooms = [...this.#rooms]
    this.#rejoining.clear()
    for (const room of rooms) this.#rejoining.add(room)
    await Promise.all(rooms.map((room) => this.#rejoin(attempt, room, 1)))
    if (this.#attempt !== attempt || this.#state === 'closed') return // dropped while rejoining: the close handler took over
    const rejoined = rooms.filter((room) => this.#rooms.has(room) && !this.#rejoining.has(room))
    const pending = rooms.filter((room) => this.#rooms.has(room) && this.#rejoining.has(room))

    this.#ready = true
    this.#flush()
    this.#setState('open')
    this.#events.emit('open', { connectionId: welcome.connectionId, user: welcome.user, reconnected, rooms: rejoined, pending })
  }

  /** `added` / `removed`: the server moved this connection (fastify.rooms.join/leave, joinUser/leaveUser). */
  #onMembership (frame: { event: string, room?: unknown }): void {
    const room = frame.room
    if (typeof room !== 'string') return
    if (frame.event === 'added') {
      // Already ours (its rejoin is under way, or our join was), or sent before our leave was handled: nothing changes.
      if (this.#rooms.has(room) || this.#leaving.has(room)) return
      this.#intend(room)
      this.#rooms.add(room)
      this.#positions.joined(room, frame) // a history room's epoch and offset: where a rejoin recovers from
      this.#events.emit('membership', { room, joined: true })
      if (this.#wantsPresence(room)) this.#loadPresence(room, false)
      return
    }
    if (!this.#rooms.has(room)) return
    this.#rooms.delete(room)
    this.#forgetRoom(room)
    if (this.#rejoining.delete(room)) this.#flush()
    this.#events.emit('membership', { room, joined: false })
  }

  /**
   * Rejoin `room` on this connection, with `since` in a history room: resolves true once rejoined.
   * Refused with `unavailable` (the history cannot be read: Redis is down), the room stays joined
   * on the client's side and the rejoin is tried again later; any other refusal drops it.
   */
  async #rejoin (attempt: Attempt, room: string, tries: number): Promise<boolean> {
    const since = this.#positions.since(room)
    const frame: Record<string, unknown> = { type: 'join', room }
    if (since !== undefined) {
      frame.since = since
      this.#positions.recovering(room)
    }
    const intent = this.#roomIntent.get(room)
    const call = this.#call(frame, undefined, (data) => {
      if (this.#attempt !== attempt || this.#roomIntent.get(room) !== intent) return
      if (!this.#rooms.has(room)) {
        // `removed` came before this ack: the server took the room away before it handled the
        // rejoin, which joined it again. The removal stands.
        this.#call({ type: 'leave', room }, undefined, undefined, true).catch(() => {})
        return
      }
      const result = this.#positions.recovered(room, data)
      if (result !== undefined) this.#events.emit('recovery', { room, ...result })
      if (this.#presence.tracked(room) || this.#wantsPresence(room)) this.#loadPresence(room, true)
    }, true)
    const taken = call.then(() => true, () => false)
    this.#rejoinsInFlight.set(room, taken)
    try {
      await call
      this.#rejoined(attempt, room)
      return true
    } catch (err) {
      const cause = err as RoomsClientError
      this.#positions.abandoned(room)
      if (this.#attempt !== attempt) return false
      if (this.#roomIntent.get(room) !== intent || !this.#rooms.has(room)) {
        this.#rejoined(attempt, room) // left meanwhile: nothing waits for it any more
        return false
      }
      if (cause.code === 'unavailable') {
        if (tries === 1) this.#events.emit('error', new RoomsClientError('unavailable', `Rejoining "${room}" failed, trying again: ${cause.message}`, { room, cause, ...(cause.frame === undefined ? {} : { frame: cause.frame }) }))
        this.#retryRejoin(attempt, room, tries)
        return false
      }
      // Refused now (forbidden, too_many_rooms, ...) or unanswered: it is no longer joined.
      this.#rooms.delete(room)
      this.#forgetRoom(room)
      this.#rejoined(attempt, room)
      this.#events.emit('error', new RoomsClientError(cause.code ?? 'internal_error', `Rejoining "${room}" failed: ${cause.message}`, { room, cause, ...(cause.frame === undefined ? {} : { frame: cause.frame }) }))
      return false
    } finally {
      if (this.#rejoinsInFlight.get(room) === taken) this.#rejoinsInFlight.delete(room)
    }
  }

  /** The room's rejoin is settled on this connection: the calls waiting for it go out. */
  #rejoined (attempt: Attempt, room: string): void {
    if (this.#attempt !== attempt || !this.#rejoining.delete(room)) return
    if (!this.#ready) return // the queue goes out at `open`
    this.#flush()
    if (this.#rooms.has(room)) this.#events.emit('rejoined', { room })
  }

  #retryRejoin (attempt: Attempt, room: string, tries: number): void {
    clearTimeout(this.#rejoinRetries.get(room))
    const delayMs = backoffDelay(tries, this.#reconnect === false ? reconnectDefaults : this.#reconnect)
    this.#rejoinRetries.set(room, setTimeout(() => {
      this.#rejoinRetries.delete(room)
      if (this.#attempt !== attempt || !this.#rooms.has(room)) return
      this.#rejoin(attempt, room, tries + 1).catch(report)
    }, delayMs))
  }

  #clearRejoinRetries (): void {
    for (const timer of this.#rejoinRetries.values()) clearTimeout(timer)
    this.#rejoinRetries.clear()
  }

  /**
   * One connection attempt ended (dropped, refused, or abandoned). `retry` forces the decision
   * (`false` for errors no retry can fix); otherwise the tables in policy.ts decide.
   */
  #failed (attempt: Attempt | undefined, code: number, reason: string, retry?: boolean, error?: RoomsClientError): void {
    clearTimeout(this.#connectTimer)
    this.#connectTimer = undefined
    this.#ready = false
    this.#connectionId = undefined
    this.#sessionRefresh?.stop()
    this.#clearRejoinRetries()
    this.#rejoining.clear()
    this.#rejoinsInFlight.clear()
    let atOnce = false
    let restart = false
    for (const pending of [...this.#pending.values()]) {
      if (pending.sent) this.#settle(pending, new RoomsClientError('disconnected', `The connection dropped before "${pending.type}" was answered`))
    }

    if (retry === undefined && attempt !== undefined) {
      if (attempt.opened) {
        retry = shouldReconnect(code)
        atOnce = reconnectsAtOnce(code)
        restart = isRestartClose(code)
        if (!retry) error = new RoomsClientError('connection_refused', `The server closed the connection with code ${code}${reason === '' ? '' : ` (${reason})`}`)
        if (Date.now() - attempt.openedAt >= STABLE_AFTER_MS) this.#backoffStep = 0
      } else {
        const status = statusOfError(attempt.error)
        if (status !== undefined) {
          const verdict = handshakeVerdict(status)
          retry = verdict.retry
          // Retried or not, the refusal travels with the close event (and ends ready() when final).
          error = upgradeRefusedError(status, verdict.code ?? (status === 429 ? 'rate_limited' : 'unavailable'))
        } else if (networkErrorOf(attempt.error) !== undefined) {
          retry = true
        } else {
          // Closed before opening, cause hidden: a browser cannot tell a refused token from a
          // server that is down, so these are retried only a bounded number of times in a row.
          retry = true
          this.#handshakeFailures++
          if (this.#reconnect !== false && this.#handshakeFailures >= this.#reconnect.maxHandshakeFailures) {
            retry = false
            error = new RoomsClientError('handshake_failed', `${this.#handshakeFailures} connection attempts in a row closed before opening (the upgrade may have been refused)`)
          }
        }
      }
    }
    retry ??= true
    if (retry && this.#reconnect === false) retry = false
    if (retry && this.#reconnect !== false) {
      this.#failures++
      if (this.#failures > this.#reconnect.maxAttempts) {
        retry = false
        const last = error === undefined ? '' : ` (the last: ${error.message})`
        error = new RoomsClientError('reconnect_failed', `Gave up after ${this.#reconnect.maxAttempts} failed attempts${last}`, { cause: error, ...(error?.status === undefined ? {} : { status: error.status }) })
      }
    }

    // The state changes first, so a 'close' listener already sees where the client is going.
    const info: { code: number, reason: string, willReconnect: boolean, error?: RoomsClientError } = { code, reason, willReconnect: retry }
    if (error !== undefined) info.error = error
    if (!retry || this.#reconnect === false) {
      this.#finish(error)
      this.#events.emit('close', info)
      return
    }
    this.#setState('reconnecting')
    this.#events.emit('close', info)
    if (this.#state !== 'reconnecting') return // a listener closed the client
    // An expired session (4001) comes back at once with a fresh token: nothing is wrong to wait out.
    // A stopping node's clients spread their return (restartDelay); later attempts back off as usual.
    const step = atOnce ? this.#backoffStep : ++this.#backoffStep
    const delayMs = atOnce ? 0 : restart ? restartDelay(this.#restartJitterMs) : backoffDelay(step, this.#reconnect)
    this.#events.emit('reconnecting', { attempt: this.#failures, delayMs })
    if (this.#state !== 'reconnecting') return // a listener closed the client
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#connect().catch(report)
    }, delayMs)
  }

  /** Final state: nothing pending survives, nothing is retried. */
  #finish (error: RoomsClientError | undefined): void {
    if (this.#state === 'closed') return
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#connectTimer)
    this.#retryTimer = undefined
    this.#connectTimer = undefined
    this.#sessionRefresh?.stop()
    this.#clearRejoinRetries()
    this.#ready = false
    this.#closedBy = error
    this.#setState('closed')
    const message = error === undefined ? 'The client is closed' : `The client is closed: ${error.message}`
    for (const pending of [...this.#pending.values()]) {
      this.#settle(pending, new RoomsClientError('closed', message, { cause: error }))
    }
    if (error !== undefined) this.#events.emit('error', error)
  }

  #setState (state: ConnectionState): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    this.#events.emit('state', state, previous)
  }

  #checkToken (token: string): void {
    if (this.#tokenTransport === 'protocol' && !TOKEN_CHARS.test(token)) {
      throw new TypeError("token has characters a subprotocol cannot carry: encode it (base64url) or use tokenTransport: 'query'")
    }
  }
}
