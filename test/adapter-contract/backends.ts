// The backends the adapter contract suite runs against, each built from the existing fixtures:
// - memory: one node with the default in-memory adapter (nobody to publish to, nothing to cut);
// - redis: three nodes on the shared Redis under a unique prefix; the outage group gets three
//   more nodes on a private, persistent redis-server that it kills (SIGKILL) and restarts on the
//   same port;
// - redis-cluster: three nodes on one private Redis Cluster (three masters, one replica each) for
//   the whole file; the outage kills the master serving the outage's rooms and waits for its
//   replica to be promoted, so the outage group runs last.
// Both Redis backends can also cut one node's subscribing connection (CLIENT KILL by the name the
// adapter gives it), so that node misses part of a room's flow while the others publish.
// Every node authenticates `?token=USER` as the user { id: USER } and has rate limiting off.
import type { Test } from 'tap'
import { connect, eventually, serve, startServer, type StartedServer, type TestClient } from '../helpers.js'
import { redisAdapter } from '../../lib/adapters/redis.js'
import type { WsRoomsOptions } from '../../types/index.js'
import { deleteKeys, LogCapture, RedisServer, SHARED_REDIS, uniquePrefix } from '../fixtures/redis-helpers.js'
import { startClusterPlugins } from '../fixtures/cluster-plugins.js'
import { slotOf } from '../fixtures/redis-cluster-server.js'

export type Client = TestClient & { welcome: any }

export interface Nodes {
  servers: StartedServer[]
  /** A client of `server` as user `user`, terminated when the file ends (the suite closes its own sooner). */
  open: (server: StartedServer, user: string) => Promise<Client>
}

/** Nodes whose link to each other can be cut and restored. */
export interface Outage extends Nodes {
  /** One room name per stem (`${stem}N`), each of them cut off by `cut()`. */
  rooms: (...stems: string[]) => Promise<string[]>
  /** Cut the nodes' link (for the cut rooms); resolves once it is down. */
  cut: () => Promise<void>
  /** Bring it back; resolves once the backend serves again (the nodes reconnect by themselves). */
  restore: () => Promise<void>
  /**
   * Cut the connection on which `server` receives `room`'s messages, once (it reconnects by
   * itself): what is published meanwhile never reaches that node live. False when there was none.
   */
  cutReceiver: (server: StartedServer, room: string) => Promise<boolean>
}

/** The name the Redis adapter gives a node's subscribing connections. */
const subscriberName = (server: StartedServer): string => `fastify-ws-rooms-${server.app.rooms.nodeId}-sub`

export interface Backend {
  name: 'memory' | 'redis' | 'redis-cluster'
  /** memory: one process, nobody to publish to. */
  nodes: 1 | 3
  /** Whether the backend has a link to cut: false for memory, whose outage group is skipped (visibly). */
  canCut: boolean
  /** The nodes every group but the outage one runs on; `outage` (canCut) sets up the ones that group runs on. */
  start: (t: Test, options: WsRoomsOptions) => Promise<Nodes & { outage?: () => Promise<Outage> }>
}

/** What every node gets before the suite's own options: tokens are user ids, no rate limit. */
const BASE: WsRoomsOptions = { authenticate: (token) => ({ id: token }), rateLimit: false }
/** Heartbeat every 500 ms: an outage is noticed within about a second, and ended as fast. */
const PRESENCE_TTL = 2000

/** `open` for servers started here: clients tracked and terminated at `t`'s end. */
function opener (t: Test): Nodes['open'] {
  const clients: Client[] = []
  t.teardown(() => { for (const c of clients) c.ws.terminate() })
  return async (server, user) => {
    const client = await connect(`${server.url}?token=${encodeURIComponent(user)}`)
    clients.push(client)
    return client
  }
}

export const memory: Backend = {
  name: 'memory',
  nodes: 1,
  canCut: false,
  async start (t, options) {
    const fixture = await serve(t, { ...BASE, ...options })
    return {
      servers: [fixture],
      open: async (server, user) => fixture.track(await connect(`${server.url}?token=${encodeURIComponent(user)}`))
    }
  }
}

export const redis: Backend = {
  name: 'redis',
  nodes: 3,
  canCut: true,
  async start (t, options) {
    const prefix = uniquePrefix('adapter-contract')
    const servers: StartedServer[] = []
    const open = opener(t)
    t.teardown(async () => {
      for (const s of servers) await s.app.close()
      await deleteKeys(SHARED_REDIS, prefix)
    })
    for (let i = 0; i < 3; i++) {
      servers.push(await startServer({ ...BASE, ...options, adapter: redisAdapter({ url: SHARED_REDIS, prefix, presenceTtl: PRESENCE_TTL }) }))
    }
    return { servers, open, outage: async () => await redisOutage(t, options) }
  }
}

/** Three nodes on a redis-server of their own, persistent (a restart keeps the history, as in production). */
async function redisOutage (t: Test, options: WsRoomsOptions): Promise<Outage> {
  const server = await RedisServer.start({ persistent: true })
  const prefix = uniquePrefix('adapter-contract-outage')
  const servers: StartedServer[] = []
  const logs: LogCapture[] = []
  const open = opener(t)
  t.teardown(async () => {
    for (const s of servers) await s.app.close()
    await server.dispose()
  })
  for (let i = 0; i < 3; i++) {
    const log = new LogCapture()
    logs.push(log)
    servers.push(await startServer({ ...BASE, ...options, adapter: redisAdapter({ url: server.url, prefix, presenceTtl: PRESENCE_TTL }) },
      undefined, { logger: { level: 'info', stream: log.stream } }))
  }
  return {
    servers,
    open,
    rooms: async (...stems) => stems.map((stem) => `${stem}0`), // one server: every room is cut
    async cut () {
      const from = logs.map((log) => log.records.length)
      await server.stop('SIGKILL')
      // Each node logs once that Redis is gone: from then on it knows it cannot order history rooms.
      await eventually(() => logs.every((log, i) => log.matching('redis adapter: Redis unavailable', undefined, from[i]).length > 0) ? true : undefined,
        'every node to notice that Redis is gone')
    },
    // Not waiting for the nodes: they reconnect by themselves, at their own pace.
    async restore () { await server.start() },
    async cutReceiver (node) { return await server.killClient(subscriberName(node)) }
  }
}

export const redisCluster: Backend = {
  name: 'redis-cluster',
  nodes: 3,
  canCut: true,
  async start (t, options) {
    // One cluster for the whole file: the outage (a master killed) is the last thing done to it.
    const { cluster, keys, nodes, open } = await startClusterPlugins(t, 'adapter-contract', options)
    const outage = async (): Promise<Outage> => {
      const victim = (await cluster.masterPorts())[0]
      const slots: number[] = []
      return {
        servers: nodes,
        open,
        async rooms (...stems) {
          const rooms: string[] = []
          for (const stem of stems) {
            for (let i = 0; ; i++) {
              const slot = slotOf(keys.roomChannel(`${stem}${i}`))
              if (await cluster.masterOf(slot) !== victim) continue
              rooms.push(`${stem}${i}`)
              slots.push(slot)
              break
            }
          }
          return rooms
        },
        async cut () { await cluster.kill(victim) },
        async restore () {
          for (const slot of slots) await cluster.waitPromoted(slot, victim)
        },
        // The node's subscriber at the master that serves the room's slot now.
        async cutReceiver (node, room) {
          const port = await cluster.masterOf(slotOf(keys.roomChannel(room)))
          const list = String(await cluster.command(port, 'CLIENT', 'LIST')).split('\n')
          const id = /^id=(\d+)/.exec(list.find((line) => line.includes(` name=${subscriberName(node)} `)) ?? '')?.[1]
          return id !== undefined && Number(await cluster.command(port, 'CLIENT', 'KILL', 'ID', id)) === 1
        }
      }
    }
    return { servers: nodes, open, outage }
  }
}
