// Closing connections, one by one and all at once. A connection the server closes is watched
// until its socket is gone (ClosingSockets cuts it after closeTimeout); on shutdown every
// connection gets 1001 and the ones that do not close in time are cut.
import type { Admission } from './admission.js'
import { ClosingSockets } from './closing-sockets.js'
import type { Connection } from './connection.js'

export class Shutdown {
  /** Connections the server is closing, until their socket is gone (some already left the node's connections). */
  readonly closingSockets: ClosingSockets<Connection>
  private readonly admission: Admission
  private readonly connections: () => Iterable<Connection>

  constructor (closeTimeout: number, admission: Admission, connections: () => Iterable<Connection>) {
    this.closingSockets = new ClosingSockets(closeTimeout)
    this.admission = admission
    this.connections = connections
  }

  /** The server sent `conn` a close frame: watch its socket (cut after closeTimeout). */
  track (conn: Connection): void {
    this.closingSockets.add(conn)
  }

  /** Its socket is gone: nothing more to wait for. */
  untrack (conn: Connection): void {
    this.closingSockets.delete(conn)
  }

  /** Turn new upgrades away; close every connection with `code` (1001 on shutdown); cut the ones still open after `timeoutMs`. */
  async closeAll (code: number, reason: string, timeoutMs: number): Promise<void> {
    this.admission.closing = true
    // Also the sockets already closing (slow consumers cut with 1013 left the connections at
    // once): the HTTP server would otherwise wait for them.
    const all = new Set<Connection>([...this.connections(), ...this.closingSockets.values()])
    const waiting = [...all].filter((conn) => conn.ws.readyState !== conn.ws.CLOSED)
    this.closingSockets.stop()
    if (waiting.length === 0) return
    await new Promise<void>((resolve) => {
      let remaining = waiting.length
      const timer = setTimeout(() => { for (const conn of waiting) conn.terminate() }, timeoutMs)
      const closed = (): void => {
        if (--remaining === 0) {
          clearTimeout(timer)
          resolve()
        }
      }
      for (const conn of waiting) {
        conn.ws.once('close', closed)
        conn.close(code, reason)
      }
    })
  }

  stop (): void {
    this.closingSockets.stop()
  }
}
