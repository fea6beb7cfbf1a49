// The adapter boundary, both ways. Outbound: every call this node makes to its adapter, each with
// its row of ADAPTER_POLICY saying what a failure means (a synchronous throw and a rejection alike):
// local delivery never waits on or fails with the adapter. A synchronous adapter (the memory one)
// costs no promise. Inbound: the AdapterNode the adapter is given at init, through which other
// nodes' messages, presence and user commands reach this node. The Redis adapter bounds its own
// waits on Redis (adapters/redis-waits.ts); nothing here adds a timeout.
// Also which history store the node uses: the adapter's, or one in this node's memory.
import type { FastifyBaseLogger } from 'fastify'
import type {
  AdapterNode, HistoryEntry, HistoryLimits, PresenceDiff, RoomMember, RoomsAdapter, RoomsHistory, UserCommand
} from '../types/index.js'
import { isPromise } from './async.js'
import { unavailableFrom } from './errors.js'
import { type HistorySink, MemoryHistoryStore } from './history/memory-store.js'
import type { HistoryRooms } from './history/rooms.js'
import type { Counters } from './stats.js'

export type AdapterOp = 'publishToRoom' | 'publishToUser' | 'publishToAll' | 'publishPresence' | 'publishUserCommand'
  | 'subscribeRoom' | 'unsubscribeRoom' | 'subscribeUser' | 'unsubscribeUser' | 'addPresence' | 'removePresence' | 'members' | 'roomSize'

export interface CallPolicy {
  /**
   * dropped: what the call carried did not reach the other nodes: counted in stats().dropped and
   * logged, the caller goes on. log: logged, the caller goes on. unavailable: the caller rejects
   * with UnavailableError. propagate: the caller rejects with the adapter's error. fallback:
   * logged, and the answer is undefined (the caller uses what this node knows).
   */
  onFailure: 'dropped' | 'log' | 'unavailable' | 'propagate' | 'fallback'
}

export const ADAPTER_POLICY: Readonly<Record<AdapterOp, CallPolicy>> = {
  publishToRoom: { onFailure: 'dropped' },
  publishToUser: { onFailure: 'dropped' },
  publishToAll: { onFailure: 'dropped' },
  publishPresence: { onFailure: 'dropped' },
  // A join goes on without its subscription or presence entry: local delivery works, and the
  // adapter subscribes again when it recovers.
  subscribeRoom: { onFailure: 'log' },
  addPresence: { onFailure: 'log' },
  unsubscribeRoom: { onFailure: 'log' },
  subscribeUser: { onFailure: 'log' },
  unsubscribeUser: { onFailure: 'log' },
  removePresence: { onFailure: 'log' },
  publishUserCommand: { onFailure: 'unavailable' },
  members: { onFailure: 'propagate' },
  roomSize: { onFailure: 'fallback' }
}

/** What the link needs from this node (the Hub implements it). */
export interface LocalNode extends HistorySink {
  deliverToRoom (room: string, payload: string, except?: string): void
  deliverToUser (userId: string, payload: string): void
  deliverToAll (payload: string): void
  localMembers (room: string): RoomMember[]
  localRooms (): string[]
  isHistoryRoom (room: string): boolean
  remotePresence (room: string, fromNode: string, diff: PresenceDiff): void
  presenceReadMark (): number
  remoteCounts (room: string, counts: ReadonlyMap<string, number>, readMark?: number): void
  applyUserCommand (userId: string, command: UserCommand): Promise<void>
  resyncHistory (): void
}

/** Trace context across nodes (tracing.ts), when @opentelemetry/api is there. */
export interface LinkTracing {
  /** The active span's W3C traceparent when a provider is registered and a span is active. */
  traceparent (): string | undefined
  /** Run a delivery that arrived with `traceparent` in a span linked to it. */
  delivery (room: string, traceparent: string, deliver: () => void): void
}

export interface ClusterLinkDeps {
  nodeId: string
  log: FastifyBaseLogger
  counters: Counters
  historyRooms: HistoryRooms
  /** The application chose the adapter (the memory one is the default). */
  explicitAdapter: boolean
  /** Set once at register (observability.ts) when tracing is possible; only with an explicit adapter. */
  tracing?: LinkTracing
}

export class ClusterLink {
  private readonly adapter: RoomsAdapter
  private readonly deps: ClusterLinkDeps
  private store: RoomsHistory | undefined
  private memoryStore: MemoryHistoryStore | undefined

  constructor (adapter: RoomsAdapter, deps: ClusterLinkDeps) {
    this.adapter = adapter
    this.deps = deps
  }

  /** Hand the adapter this node (init), then choose where history rooms are kept. */
  async open (node: LocalNode): Promise<void> {
    await this.adapter.init(new AdapterNodeView(node, this.deps))
    const limits = this.deps.historyRooms.limits
    if (limits === undefined) return
    if (this.adapter.history !== undefined) {
      this.store = this.adapter.history
      return
    }
    this.store = this.memoryStore = new MemoryHistoryStore(limits, node)
    if (this.deps.explicitAdapter) {
      this.deps.log.warn('fastify-ws-rooms: the adapter keeps no history, so each node keeps its own in memory: offsets are per node, not one order across nodes')
    }
  }

  /** Where history rooms are ordered and kept. Only asked for a history room (history is on). */
  get history (): RoomsHistory {
    if (this.store === undefined) throw new Error('fastify-ws-rooms: history is off')
    return this.store
  }

  /** After every connection is gone: the memory history's timer, then the adapter. */
  async close (): Promise<void> {
    this.memoryStore?.close()
    await this.adapter.close()
  }

  // ---- outbound: each call with its policy; undefined when the adapter answered synchronously ----

  /** Carry trace context to the other nodes' deliveries (only an adapter the application chose has other nodes). */
  useTracing (tracing: LinkTracing): void {
    if (this.deps.explicitAdapter) this.deps.tracing = tracing
  }

  publishToRoom (room: string, payload: string, except?: string): Promise<void> | undefined {
    try {
      const traceparent = this.deps.tracing?.traceparent()
      return this.settle('publishToRoom', traceparent === undefined
        ? this.adapter.publishToRoom(room, payload, except)
        : this.adapter.publishToRoom(room, payload, except, traceparent))
    } catch (err) {
      return this.failed('publishToRoom', err)
    }
  }

  publishToUser (userId: string, payload: string): Promise<void> | undefined {
    try {
      return this.settle('publishToUser', this.adapter.publishToUser(userId, payload))
    } catch (err) {
      return this.failed('publishToUser', err)
    }
  }

  publishToAll (payload: string): Promise<void> | undefined {
    try {
      return this.settle('publishToAll', this.adapter.publishToAll(payload))
    } catch (err) {
      return this.failed('publishToAll', err)
    }
  }

  /** An adapter without presence diffs carries the framed v1 event of an `each` change, and nothing for a batch. */
  publishPresence (room: string, diff: PresenceDiff, framed: string | undefined): void {
    if (this.adapter.publishPresence === undefined) {
      if (framed !== undefined) this.publishToRoom(room, framed)
      return
    }
    try {
      this.settle('publishPresence', this.adapter.publishPresence(room, diff))
    } catch (err) {
      this.failed('publishPresence', err)
    }
  }

  subscribeRoom (room: string): Promise<void> | undefined {
    try {
      return this.settle('subscribeRoom', this.adapter.subscribeRoom(room))
    } catch (err) {
      return this.failed('subscribeRoom', err)
    }
  }

  unsubscribeRoom (room: string): void {
    try {
      this.settle('unsubscribeRoom', this.adapter.unsubscribeRoom(room))
    } catch (err) {
      this.failed('unsubscribeRoom', err)
    }
  }

  subscribeUser (userId: string): Promise<void> | undefined {
    try {
      return this.settle('subscribeUser', this.adapter.subscribeUser(userId))
    } catch (err) {
      return this.failed('subscribeUser', err)
    }
  }

  unsubscribeUser (userId: string): void {
    try {
      this.settle('unsubscribeUser', this.adapter.unsubscribeUser(userId))
    } catch (err) {
      this.failed('unsubscribeUser', err)
    }
  }

  addPresence (room: string, member: RoomMember): Promise<void> | undefined {
    try {
      return this.settle('addPresence', this.adapter.addPresence(room, member))
    } catch (err) {
      return this.failed('addPresence', err)
    }
  }

  removePresence (room: string, connectionId: string): void {
    try {
      this.settle('removePresence', this.adapter.removePresence(room, connectionId))
    } catch (err) {
      this.failed('removePresence', err)
    }
  }

  /** Resolves once the command was handed over to the other nodes (at once without such an adapter). */
  async publishUserCommand (userId: string, command: UserCommand): Promise<void> {
    const publish = this.adapter.publishUserCommand
    if (publish === undefined) return
    try {
      await publish.call(this.adapter, userId, command)
    } catch (err) {
      throw unavailableFrom(err, `the ${command.op} command could not reach the other nodes`)
    }
  }

  async members (room: string, limit?: number): Promise<RoomMember[]> {
    return await this.adapter.members(room, limit)
  }

  /** The room's size across nodes as the adapter tells it; undefined when it cannot. */
  async roomSize (room: string): Promise<number | undefined> {
    try {
      return await this.adapter.roomSize?.(room)
    } catch (err) {
      this.failed('roomSize', err)
      return undefined
    }
  }

  /** An async result: a rejection gets the call's policy. */
  private settle (op: AdapterOp, result: void | Promise<void>): Promise<void> | undefined {
    if (!isPromise(result)) return undefined
    return result.catch((err: unknown) => { this.failed(op, err) })
  }

  /** The policy of a failed call that must not fail its caller ('dropped', 'log', 'fallback'). */
  private failed (op: AdapterOp, err: unknown): undefined {
    if (ADAPTER_POLICY[op].onFailure === 'dropped') this.deps.counters.dropped++
    this.deps.log.error({ err }, `rooms adapter ${op} failed`)
    return undefined
  }
}

/** This node as its adapter sees it: what arrives from other nodes, and what the adapter may ask. */
class AdapterNodeView implements AdapterNode {
  readonly nodeId: string
  readonly log: FastifyBaseLogger
  readonly historyLimits: HistoryLimits | undefined
  private readonly node: LocalNode
  private readonly counters: Counters
  private readonly deps: ClusterLinkDeps

  constructor (node: LocalNode, deps: ClusterLinkDeps) {
    this.node = node
    this.deps = deps
    this.nodeId = deps.nodeId
    this.log = deps.log
    this.historyLimits = deps.historyRooms.limits
    this.counters = deps.counters
  }

  deliverToRoom (room: string, payload: string, except?: string, traceparent?: string): void {
    const tracing = this.deps.tracing
    if (traceparent === undefined || tracing === undefined) this.node.deliverToRoom(room, payload, except)
    else tracing.delivery(room, traceparent, () => { this.node.deliverToRoom(room, payload, except) })
  }

  deliverToUser (userId: string, payload: string): void {
    this.node.deliverToUser(userId, payload)
  }

  deliverToAll (payload: string): void {
    this.node.deliverToAll(payload)
  }

  localMembers (room: string): RoomMember[] {
    return this.node.localMembers(room)
  }

  localRooms (): string[] {
    return this.node.localRooms()
  }

  localCount (room: string): number {
    return this.node.localCount(room)
  }

  countDropped (count = 1): void {
    this.counters.dropped += count
  }

  deliverPresence (room: string, fromNode: string, diff: PresenceDiff): void {
    this.node.remotePresence(room, fromNode, diff)
  }

  presenceReadMark (): number {
    return this.node.presenceReadMark()
  }

  presenceCounts (room: string, counts: ReadonlyMap<string, number>, readMark?: number): void {
    this.node.remoteCounts(room, counts, readMark)
  }

  deliverUserCommand (userId: string, command: UserCommand): void {
    this.node.applyUserCommand(userId, command).catch((err: unknown) => {
      this.log.error({ err, userId, op: command.op }, 'a user command from another node failed')
    })
  }

  deliverHistory (room: string, entry: HistoryEntry): void {
    this.node.deliverHistory(room, entry)
  }

  resyncHistory (): void {
    this.node.resyncHistory()
  }

  isHistoryRoom (room: string): boolean {
    return this.node.isHistoryRoom(room)
  }
}
