// Sockets the server has started to close (a close frame sent, the peer's answer awaited). Each
// gets `closeTimeout` to finish the closing handshake and is then cut, so a peer that never reads
// (a slow consumer closed with 1013, whose close frame waits behind what it did not read) holds
// its socket for closeTimeout, not for ws's own 30 s. One timer for all of them, armed for the oldest.
import type WebSocket from 'ws'

export interface ClosingSocket {
  readonly ws: WebSocket
  closeStartedAt: number
  terminate (): void
}

export class ClosingSockets<C extends ClosingSocket = ClosingSocket> {
  private readonly timeoutMs: number
  /** In the order their close started, so the oldest comes first. */
  private readonly sockets = new Set<C>()
  private timer: NodeJS.Timeout | undefined

  constructor (timeoutMs: number) {
    this.timeoutMs = timeoutMs
  }

  values (): IterableIterator<C> { return this.sockets.values() }

  add (conn: C, now = Date.now()): void {
    conn.closeStartedAt = now
    this.sockets.add(conn)
    this.schedule(now)
  }

  /** The socket is closed: nothing more to wait for. */
  delete (conn: C): void {
    this.sockets.delete(conn)
    if (this.sockets.size === 0 && this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule (now: number): void {
    if (this.timer !== undefined) return
    const oldest = this.sockets.values().next().value
    if (oldest === undefined) return
    const delay = Math.max(0, oldest.closeStartedAt + this.timeoutMs - now)
    this.timer = setTimeout(() => this.sweep(), delay)
    this.timer.unref()
  }

  private sweep (): void {
    this.timer = undefined
    const now = Date.now()
    for (const conn of this.sockets) {
      if (now - conn.closeStartedAt < this.timeoutMs) break
      this.sockets.delete(conn)
      conn.terminate()
    }
    this.schedule(now)
  }
}
