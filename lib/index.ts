// Plugin entry: checks the options, wires the broker into Fastify's routing and lifecycle, and
// registers @fastify/websocket when the instance does not have it yet. The work is done in the
// modules it imports (handshake, frame-handler, broker, connection, adapters).
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type WebSocket from 'ws'
import type { RoomUser, WsRoomsOptions } from '../types/index.js'
import { memoryAdapter } from './adapters/memory.js'
import { RoomBroker } from './broker.js'
import { Connection, kConnection } from './connection.js'
import { createFrameHandler } from './frame-handler.js'
import { useWriteDelay } from './frame-writer.js'
import { createHandshake, kRoomsExpiresAt, kRoomsUpgrade, kRoomsUser, redactTokenFromUrl, SUBPROTOCOL } from './handshake.js'
import { startKeepalive } from './keepalive.js'
import { normaliseOptions } from './options.js'
import { welcomeFrame } from './protocol.js'

type RoomsSocket = WebSocket & { [kConnection]: Connection, _receiver?: { _maxPayload: number } }
type HandleProtocols = (protocols: Set<string>, request: unknown) => string | false

/**
 * Answer `rooms.v1` on our route and never echo a `bearer.<token>` subprotocol back; other
 * routes of a shared @fastify/websocket keep their own choice (ws's default: the first offered).
 */
function selectSubprotocol (previous: HandleProtocols | null | undefined): HandleProtocols {
  return function handleProtocols (protocols, request) {
    if ((request as Record<symbol, unknown>)[kRoomsUpgrade] === true) return protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false
    if (typeof previous === 'function') return previous(protocols, request)
    for (const protocol of protocols) if (!protocol.startsWith('bearer.')) return protocol
    return false
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

const plugin: FastifyPluginAsync<WsRoomsOptions> = async function fastifyWsRooms (fastify: FastifyInstance, options) {
  const params = normaliseOptions(options)
  const broker = new RoomBroker(fastify.log, params)
  broker.adapter = params.adapter ?? memoryAdapter()
  await broker.adapter.init(broker)
  broker.start()
  const stopWriteDelay = useWriteDelay(params.writeDelay)
  if (params.history !== undefined && broker.adapter.history === undefined && params.adapter !== undefined) {
    fastify.log.warn('fastify-ws-rooms: the adapter keeps no history, so each node keeps its own in memory: offsets are per node, not one order across nodes')
  }

  // Added before @fastify/websocket's own preClose, so our clients get 1001 before its server closes.
  const stopKeepalive = startKeepalive(broker)
  // A typebox 1.x schema given to `handle` is compiled once its compiler is imported: not served before.
  fastify.addHook('onReady', async () => { await broker.schemasCompiled() })
  fastify.addHook('preClose', async () => {
    stopKeepalive()
    await broker.closeAll(1001, 'Server shutting down', params.closeTimeout)
  })
  fastify.addHook('onClose', async () => {
    broker.stop()
    stopWriteDelay()
    await broker.adapter.close()
  })

  const ownsWebsocket = !fastify.hasDecorator('websocketServer')
  if (ownsWebsocket) {
    await fastify.register(websocket, {
      options: { maxPayload: params.maxPayload, clientTracking: false },
      preClose (done) {
        this.websocketServer.close(() => done())
      }
    })
  }
  // A websocket server the user registered may track its clients and close them all, without a
  // code, in its own preClose (before ours runs): our sockets are kept out of that set (§11).
  const trackedClients = (fastify.websocketServer as { clients?: Set<WebSocket> }).clients
  const wssOptions = fastify.websocketServer.options as { maxPayload?: number, handleProtocols?: HandleProtocols | null }
  wssOptions.handleProtocols = selectSubprotocol(wssOptions.handleProtocols)
  const serverMaxPayload = wssOptions.maxPayload

  fastify.decorate('rooms', broker as unknown as FastifyInstance['rooms'])
  fastify.decorateRequest(kRoomsUser, null)
  fastify.decorateRequest(kRoomsExpiresAt, undefined)

  const onFrame = createFrameHandler(broker)
  function onMessage (this: RoomsSocket, data: WebSocket.RawData, isBinary: boolean): void {
    onFrame(this[kConnection], data, isBinary)
  }
  // Replaces @fastify/websocket's per-socket error closure when the websocket plugin is ours:
  // ws has already answered a protocol error with its close code (1002, 1007, 1009).
  function onSocketError (this: RoomsSocket, error: Error): void {
    fastify.log.debug({ err: error, connectionId: this[kConnection].id }, 'WebSocket error')
  }
  function onPong (this: RoomsSocket): void {
    this[kConnection].lastSeen = Date.now()
  }
  function onClose (this: RoomsSocket, code: number): void {
    broker.socketClosed(this[kConnection], code)
  }

  fastify.get(params.path, {
    websocket: true,
    preValidation: createHandshake(broker),
    logSerializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: redactTokenFromUrl(request.url),
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort
      })
    }
  }, function onConnection (socket, request) {
    if (broker.closing) {
      socket.close(1001, 'Server shutting down')
      return
    }
    const ws = socket as RoomsSocket
    // A @fastify/websocket set up by the user may allow larger frames than we do.
    if (serverMaxPayload !== params.maxPayload && ws._receiver !== undefined) ws._receiver._maxPayload = params.maxPayload
    trackedClients?.delete(ws)
    const id = broker.newConnectionId()
    const user = (request as unknown as Record<symbol, RoomUser | null>)[kRoomsUser] ?? { id: `anon-${id}` }
    const expiresAt = (request as unknown as Record<symbol, number | undefined>)[kRoomsExpiresAt]
    // The request is dropped after the upgrade unless asked for: it is most of an idle connection's memory.
    const conn = new Connection(id, user, ws, request.ip, params.retainRequest ? request : undefined, broker, Date.now(), expiresAt)
    // Shared listeners that find their connection on the socket: no closures per connection.
    ws.on('message', onMessage as (data: WebSocket.RawData, isBinary: boolean) => void)
    ws.on('pong', onPong as () => void)
    ws.on('close', onClose as (code: number) => void)
    releaseUpgradeLeftovers(request, ws, ownsWebsocket ? onSocketError as (error: Error) => void : undefined)
    conn.sendPayload(welcomeFrame(id, conn.userJson, expiresAt))
    broker.add(conn)
  })
}

export const fastifyWsRooms = fp(plugin, { fastify: '5.x', name: 'fastify-ws-rooms' })
export default fastifyWsRooms
export { memoryAdapter }
export { RoomsError } from './errors.js'
export type * from '../types/index.js'
