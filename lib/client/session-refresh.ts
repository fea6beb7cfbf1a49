// Renewing the session on the live connection (docs/client.md#session-refresh): when the welcome
// or a refresh's ack says when the session ends, a new token is fetched from the `token` function
// ahead of that time and sent as a `refresh` frame. When is spread with jitter, so a fleet whose
// tokens were issued together does not refresh together. A refresh that fails or comes too late
// changes nothing here: the server closes the connection with 4001 at expiresAt, and the client
// reconnects at once with a fresh token, as it always did.

export interface RefreshOptions {
  /** Refresh at least this long before expiresAt (capped at a quarter of the time left). Default 30000. */
  marginMs?: number
  /** A further random 0..jitterMs earlier (also capped at a quarter of the time left). Default 30000. */
  jitterMs?: number
}

export interface RefreshHost {
  /** A fresh token from the `token` function. */
  token: () => Promise<string>
  /** Send `{ type: 'refresh', token }` on the current connection; resolves with the ack's data. */
  send: (token: string) => Promise<unknown>
  /** The session was renewed: the new expiry (undefined: it no longer expires). */
  refreshed: (expiresAt: number | undefined) => void
  /** A refresh failed; the server's 4001 at expiresAt follows. */
  failed: (err: unknown) => void
}

const MAX_DELAY = 2 ** 31 - 1

export function normalizeRefresh (value: RefreshOptions | false | undefined): Required<RefreshOptions> | false {
  if (value === false) return false
  if (value !== undefined && (value === null || typeof value !== 'object')) throw new TypeError('refresh must be an object or false')
  const marginMs = value?.marginMs ?? 30_000
  const jitterMs = value?.jitterMs ?? 30_000
  for (const [name, n] of [['refresh.marginMs', marginMs], ['refresh.jitterMs', jitterMs]] as const) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new TypeError(`${name} must be a number >= 0`)
  }
  return { marginMs, jitterMs }
}

export class SessionRefresh {
  readonly #host: RefreshHost
  readonly #options: Required<RefreshOptions>
  #timer: ReturnType<typeof setTimeout> | undefined
  /** Bumped by stop() and each schedule(): a refresh started under an older one is ignored. */
  #generation = 0

  constructor (host: RefreshHost, options: Required<RefreshOptions>) {
    this.#host = host
    this.#options = options
  }

  /** The session ends at `expiresAt` (ms since the epoch; undefined: never): plan its refresh. */
  schedule (expiresAt: unknown): void {
    this.stop()
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) return
    const left = expiresAt - Date.now()
    if (left <= 0) return
    const ahead = Math.min(this.#options.marginMs, left / 4) + Math.random() * Math.min(this.#options.jitterMs, left / 4)
    const generation = this.#generation
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#refresh(generation).catch(() => {})
    }, Math.min(MAX_DELAY, Math.max(0, left - ahead)))
    // A pending refresh must not keep a Node process alive on its own.
    ;(this.#timer as { unref?: () => void }).unref?.()
  }

  /** The connection dropped or the client closed: nothing more is sent on it. */
  stop (): void {
    this.#generation++
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  async #refresh (generation: number): Promise<void> {
    try {
      const token = await this.#host.token()
      if (generation !== this.#generation) return
      const data = await this.#host.send(token)
      if (generation !== this.#generation) return
      const expiresAt = (data as { expiresAt?: unknown } | undefined)?.expiresAt
      this.schedule(expiresAt)
      this.#host.refreshed(typeof expiresAt === 'number' ? expiresAt : undefined)
    } catch (err) {
      if (generation === this.#generation) this.#host.failed(err)
    }
  }
}
