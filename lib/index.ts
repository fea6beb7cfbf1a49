// Plugin entry, wiring only: checks the options, assembles the node (node.ts), hooks it into
// Fastify's lifecycle, registers @fastify/websocket when the instance does not have it yet, and
// adds the route (handshake.ts before the upgrade, accept.ts after it).
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type WebSocket from 'ws'
import type { WsRoomsOptions } from '../types/index.js'
import { memoryAdapter } from './adapters/memory.js'
import { createAccept } from './accept.js'
import { useWriteDelay } from './frame-writer.js'
import { closeRefusedUpgrade, createHandshake, kRoomsExpiresAt, kRoomsUser, redactTokenFromUrl, selectSubprotocol } from './handshake.js'
import { startKeepalive } from './keepalive.js'
import { createNode } from './node.js'
import { answerUpgradesWhileClosing } from './drain.js'
import { startObservability } from './observability.js'
import { normaliseOptions } from './options.js'

const plugin: FastifyPluginAsync<WsRoomsOptions> = async function fastifyWsRooms (fastify: FastifyInstance, options) {
  const params = normaliseOptions(options)
  const node = createNode(params, fastify.log)
  const observability = await startObservability(node)
  try {
    await node.start()
  } catch (err) {
    observability.close()
    throw err
  }
  const stopWriteDelay = useWriteDelay(params.writeDelay)

  // Added before @fastify/websocket's own preClose, so our clients get 1001 before its server closes.
  const stopKeepalive = startKeepalive(node.hub, params, fastify.log)
  // A typebox 1.x schema given to `handle` is compiled once its compiler is imported: not served before.
  fastify.addHook('onReady', async () => { await node.handlers.schemasCompiled() })
  fastify.addHook('preClose', async () => {
    // drainOnClose spreads the clients' departure first, unless a drain was started already:
    // after (or during) a drain, what is left gets 1001 at once.
    if (params.drainOnClose > 0 && !node.drain.started) await node.drain.start(params.drainOnClose)
    node.drain.stop()
    stopKeepalive()
    await node.shutdown.closeAll(1001, 'Server shutting down', params.closeTimeout)
  })
  fastify.addHook('onClose', async () => {
    observability.close()
    stopWriteDelay()
    await node.stop()
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
  // code, in its own preClose (before ours runs): our sockets are kept out of that set.
  const trackedClients = (fastify.websocketServer as { clients?: Set<WebSocket> }).clients
  const wssOptions = fastify.websocketServer.options as { maxPayload?: number, handleProtocols?: Parameters<typeof selectSubprotocol>[0] }
  wssOptions.handleProtocols = selectSubprotocol(wssOptions.handleProtocols)

  answerUpgradesWhileClosing(fastify, node.admission)
  fastify.decorate('rooms', node.api)
  fastify.decorateRequest(kRoomsUser, null)
  fastify.decorateRequest(kRoomsExpiresAt, undefined)

  fastify.get(params.path, {
    websocket: true,
    preValidation: createHandshake(node),
    onResponse: closeRefusedUpgrade,
    logSerializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: redactTokenFromUrl(request.url),
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort
      })
    }
  }, createAccept(node, { ownsWebsocket, trackedClients, serverMaxPayload: wssOptions.maxPayload, instrument: observability.instrument }))
}

export const fastifyWsRooms = fp(plugin, { fastify: '5.x', name: 'fastify-ws-rooms' })
export default fastifyWsRooms
export { memoryAdapter }
export { RoomsError } from './errors.js'
export { defineMessages } from './client/messages.js'
export type * from '../types/index.js'
