// One node's parts, assembled in dependency order: the only place that knows all of them. The
// Fastify side (index.ts) gets the facade for `fastify.rooms` and what its routes and hooks call.
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { RoomsAdapter } from '../types/index.js'
import { memoryAdapter } from './adapters/memory.js'
import { Admission } from './admission.js'
import { RoomsFacade } from './api.js'
import { ClusterLink } from './cluster-link.js'
import type { CommandContext } from './commands/index.js'
import { HandlerRegistry } from './commands/registry.js'
import { Replies } from './commands/replies.js'
import type { ConnectionHost } from './connection.js'
import { RoomsEvents } from './events.js'
import { HistoryRooms } from './history/rooms.js'
import { Hub } from './hub.js'
import { MembersQuery } from './members-query.js'
import type { RoomsParams } from './options.js'
import { Publisher } from './publish.js'
import { Shutdown } from './shutdown.js'
import { Counters } from './stats.js'
import { Drain } from './drain.js'

export interface RoomsNode {
  readonly params: RoomsParams
  readonly log: FastifyBaseLogger
  readonly api: RoomsFacade
  readonly hub: Hub
  readonly publisher: Publisher
  readonly members: MembersQuery
  readonly handlers: HandlerRegistry
  /** What client frames are handled with (commands/). */
  readonly commands: CommandContext
  readonly counters: Counters
  /** The adapter boundary (observability.ts hands it the tracing). */
  readonly link: ClusterLink
  readonly admission: Admission
  readonly shutdown: Shutdown
  /** Closing the connections over a window before a restart (fastify.rooms.drain, drainOnClose). */
  readonly drain: Drain
  /** What every Connection of this node shares (limits, counters, slow receivers, closes). */
  readonly connectionHost: ConnectionHost
  /** Hand the adapter this node; resolves once it is ready. */
  start (): Promise<void>
  /** After every connection is gone: timers, then the adapter. */
  stop (): Promise<void>
}

export function createNode (params: RoomsParams, log: FastifyBaseLogger): RoomsNode {
  const nodeId = randomBytes(6).toString('hex')
  const counters = new Counters()
  const events = new RoomsEvents(log)
  const historyRooms = new HistoryRooms(params.history, log)
  const adapter: RoomsAdapter = params.adapter ?? memoryAdapter()
  const link = new ClusterLink(adapter, { nodeId, log, counters, historyRooms, explicitAdapter: params.adapter !== undefined })
  const hub = new Hub({ nodeId, params, log, link, events, counters, historyRooms })
  const publisher = new Publisher(hub, link)
  const members = new MembersQuery(hub, link, params)
  const handlers = new HandlerRegistry((err) => { log.error({ err }, err.message) })
  const commands: CommandContext = { params, log, hub, publisher, members, handlers, replies: new Replies(params, log, counters), counters }
  const admission = new Admission()
  const shutdown = new Shutdown(params.closeTimeout, admission, () => hub.connections())
  const drain = new Drain(admission, () => hub.connections())
  const connectionHost: ConnectionHost = {
    maxBufferedBytes: params.maxBufferedBytes,
    counters,
    slowConsumer: (conn) => { hub.slowConsumer(conn) },
    closeStarted: (conn) => { shutdown.track(conn) }
  }
  const api = new RoomsFacade({ hub, link, publisher, members, handlers, events, counters, admission, shutdown, drain }, params)
  events.callListenersOn(api)
  return {
    params,
    log,
    api,
    hub,
    publisher,
    members,
    handlers,
    commands,
    counters,
    link,
    admission,
    shutdown,
    drain,
    connectionHost,
    start: async () => { await link.open(hub) },
    stop: async () => {
      hub.stop()
      drain.stop()
      shutdown.stop()
      await link.close()
    }
  }
}
