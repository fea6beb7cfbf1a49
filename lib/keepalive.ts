// Two sweeps over the node's connections instead of a timer per connection: every
// idleTimeout / 2 ping everyone and terminate whoever sent nothing (no frame, no pong) for
// idleTimeout; every firstFrameTimeout / 2 close (1008) whoever never sent a data frame.
import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from './connection.js'
import type { RoomsParams } from './options.js'

export interface ConnectionList {
  connections (): Iterable<Connection>
}

export function startKeepalive (node: ConnectionList, params: RoomsParams, log: FastifyBaseLogger): () => void {
  const { idleTimeout, firstFrameTimeout } = params
  const timers: NodeJS.Timeout[] = []

  timers.push(setInterval(() => {
    const now = Date.now()
    for (const conn of node.connections()) {
      if (now - conn.lastSeen >= idleTimeout) {
        log.debug({ connectionId: conn.id }, 'terminating an idle connection')
        conn.terminate()
      } else if (conn.open) {
        conn.ws.ping()
      }
    }
  }, Math.max(1, Math.floor(idleTimeout / 2))).unref())

  if (firstFrameTimeout > 0) {
    timers.push(setInterval(() => {
      const now = Date.now()
      for (const conn of node.connections()) {
        if (!conn.spoke && now - conn.connectedAt >= firstFrameTimeout) conn.close(1008, 'No frame received')
      }
    }, Math.max(1, Math.floor(firstFrameTimeout / 2))).unref())
  }

  return () => { for (const timer of timers) clearInterval(timer) }
}
