// An upgraded socket becomes a Connection: the welcome frame, then the hub knows it (over an
// adapter, once this node listens on the user's channel). Every socket
// shares the same listeners, which find their connection on the socket (no closures per
// connection), and what the upgrade left attached to the socket is released.
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import type { RoomUser } from '../types/index.js'
import { refreshRequest, type RefreshRequestShared } from './authenticate.js'
import { Connection, kConnection } from './connection.js'
import { DRAIN_CLOSE_CODE, DRAIN_CLOSE_REASON } from './drain.js'
import { createFrameHandler, hold } from './frame-handler.js'
import type { FrameInstrument } from './frame-instrument.js'
import type { Grants } from './grants.js'
import { kRoomsExpiresAt, kRoomsGrants, kRoomsUser } from './handshake.js'
import type { RoomsNode } from './node.js'
import { welcomeFrame } from './protocol/server-frames.js'
import { tally } from './stats.js'

type RoomsSocket = WebSocket & { [kConnection]: Connection, _receiver?: { _maxPayload: number } }

export interface AcceptOptions {
  /** The websocket plugin is ours: its per-socket error closure is replaced by a shared listener. */
  ownsWebsocket: boolean
  /** The clients a user's websocket server tracks (and would close without a code): ours are kept out. */
  trackedClients: Set<WebSocket> | undefined
  /** The websocket server's maxPayload, when it differs from ours. */
  serverMaxPayload: number | undefined
  /** Metrics and tracing per frame; null when both are off. */
  instrument: FrameInstrument | null
}

/** The route's WebSocket handler. */
export function createAccept (node: RoomsNode, options: AcceptOptions): (socket: WebSocket, request: FastifyRequest) => void {
  const { params, hub, shutdown, admission, connectionHost, log } = node
  const { ownsWebsocket, trackedClients, serverMaxPayload, instrument } = options
  const { onFrame, resume } = createFrameHandler(node.commands, node.counters, instrument)
  /** What every connection's refresh request shares (see refreshRequest); made at the first connection. */
  let refreshShared: RefreshRequestShared | undefined

  function onMessage (this: RoomsSocket, data: WebSocket.RawData, isBinary: boolean): void {
    onFrame(this[kConnection], data, isBinary)
  }
  // Replaces @fastify/websocket's per-socket error closure when the websocket plugin is ours:
  // ws has already answered a protocol error with its close code (1002, 1007, 1009).
  function onSocketError (this: RoomsSocket, error: Error): void {
    log.debug({ err: error, connectionId: this[kConnection].id }, 'WebSocket error')
  }
  function onPong (this: RoomsSocket): void {
    this[kConnection].lastSeen = Date.now()
  }
  function onClose (this: RoomsSocket, code: number): void {
    const conn = this[kConnection]
    // The code that closed it first: ours (ws may not have read the client's echo), else the client's.
    tally(node.counters.closes, conn.closeCode !== 0 ? conn.closeCode : code)
    shutdown.untrack(conn)
    hub.remove(conn, code)
  }

  return function onConnection (socket, request) {
    if (admission.closing) {
      socket.close(1001, 'Server shutting down')
      return
    }
    // Past the handshake before a drain began: it goes elsewhere like the others.
    if (admission.draining) {
      socket.close(DRAIN_CLOSE_CODE, DRAIN_CLOSE_REASON)
      return
    }
    const ws = socket as RoomsSocket
    // A @fastify/websocket set up by the user may allow larger frames than we do.
    if (serverMaxPayload !== params.maxPayload && ws._receiver !== undefined) ws._receiver._maxPayload = params.maxPayload
    trackedClients?.delete(ws)
    const id = hub.newConnectionId()
    const user = (request as unknown as Record<symbol, RoomUser | null>)[kRoomsUser] ?? { id: `anon-${id}` }
    const expiresAt = (request as unknown as Record<symbol, number | undefined>)[kRoomsExpiresAt]
    // The request is dropped after the upgrade unless asked for: it is most of an idle connection's memory.
    const conn = new Connection(id, user, ws, request.ip, params.retainRequest ? request : undefined, connectionHost, Date.now(), expiresAt)
    const grants = (request as unknown as Record<symbol, Grants | undefined>)[kRoomsGrants]
    if (grants !== undefined) conn.grants = grants
    // A refresh calls authenticate again with the upgrade's headers, ip and url.
    if (params.authenticate !== undefined && conn.request === undefined) {
      conn.authRequest = refreshRequest(request, refreshShared ??= { server: request.server, log: request.server.log })
    }
    ws.on('message', onMessage as (data: WebSocket.RawData, isBinary: boolean) => void)
    ws.on('pong', onPong as () => void)
    ws.on('close', onClose as (code: number) => void)
    releaseUpgradeLeftovers(request, ws, ownsWebsocket ? onSocketError as (error: Error) => void : undefined)
    const welcome = (): boolean => {
      // Shutdown or a drain began while this connection waited for its user's channel.
      if (admission.closing || admission.draining) {
        if (admission.closing) ws.close(1001, 'Server shutting down')
        else ws.close(DRAIN_CLOSE_CODE, DRAIN_CLOSE_REASON)
        return false
      }
      conn.sendPayload(welcomeFrame(id, conn.userJson, expiresAt))
      return true
    }
    // Over an adapter, a user's first connection on this node waits for the subscription to its
    // user's channel before the welcome; what the client sends meanwhile waits its turn.
    const admitted = hub.admit(conn, welcome)
    if (admitted !== undefined) {
      hold(conn)
      admitted.then(() => { resume(conn) }, /* c8 ignore next */ (err: unknown) => { log.error({ err }, 'admitting a connection failed') })
    }
  }
}

/**
 * What the upgrade leaves attached to a long-lived socket that nobody needs after it: the
 * ServerResponse @fastify/websocket assigned to the TCP socket (never finished, since the reply
 * was hijacked) and, when the websocket plugin is ours, its per-socket error closure that holds
 * the request and reply. Dropping them keeps an idle connection's memory close to a bare ws's.
 */
function releaseUpgradeLeftovers (request: FastifyRequest, ws: WebSocket, errorListener: ((error: Error) => void) | undefined): void {
  const socket = request.raw.socket as (typeof request.raw.socket & { _httpMessage?: { detachSocket?: (s: unknown) => void } | null }) | null
  socket?._httpMessage?.detachSocket?.(socket)
  if (errorListener !== undefined) {
    ws.removeAllListeners('error')
    ws.on('error', errorListener)
  }
}
