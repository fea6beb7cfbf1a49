// Who may still come in: requests counted against maxConnections / maxConnectionsPerIp from the
// handshake until they are over, and the gates that turn new upgrades away once a drain or the
// shutdown began.

/** Anything that says when it is over: a socket, or a response. */
export interface Closes {
  once (event: 'close', listener: () => void): unknown
}

export class Admission {
  /** Requests admitted past the capacity checks and not over yet, in total and by IP. */
  admittedSockets = 0
  readonly admittedPerIp = new Map<string, number>()
  /** Set once shutdown begins: new upgrades are turned away. */
  closing = false
  /** Set once a drain begins: new upgrades get 503 with Retry-After, until the node is gone. */
  draining = false
  /** When the drain's window ends (ms since the epoch): what Retry-After counts down to. */
  drainEndsAt = 0

  /**
   * Count a request against `maxConnections` / `maxConnectionsPerIp` until `over` closes: an
   * upgrade's socket (refused upgrades, upgrades still authenticating, and receivers closed for
   * being slow whose socket lingers all hold their slot, so none of them can be used to pass the
   * limits), or a plain request's response.
   */
  admit (ip: string, over: Closes): void {
    this.admittedSockets++
    this.admittedPerIp.set(ip, (this.admittedPerIp.get(ip) ?? 0) + 1)
    over.once('close', () => {
      this.admittedSockets--
      const left = (this.admittedPerIp.get(ip) ?? 1) - 1
      if (left <= 0) this.admittedPerIp.delete(ip)
      else this.admittedPerIp.set(ip, left)
    })
  }

  /** Seconds a refused upgrade is told to wait: until the drain's window is over, at least 1. */
  retryAfterSeconds (now = Date.now()): number {
    return Math.max(1, Math.ceil((this.drainEndsAt - now) / 1000))
  }

  /** How many requests from `ip` are admitted now. */
  admittedFrom (ip: string): number {
    return this.admittedPerIp.get(ip) ?? 0
  }
}
