// The node's counters: plain numeric fields, incremented where things happen (the hot path
// included), read by stats().
import type { RoomsStats } from '../types/index.js'

export class Counters {
  messagesIn = 0
  messagesOut = 0
  rateLimited = 0
  rejectedUpgrades = 0
  slowConsumersClosed = 0
  /** Messages that could not be carried to the other nodes. */
  dropped = 0
  // Tallies of rare events by a bounded key, read by the metrics at scrape time (metrics.ts).
  // Kept whether metrics are on or not: a Map update per refusal or close costs nothing that shows.
  /** Error frames sent, by code. */
  readonly refusals = new Map<string, number>()
  /** Upgrades refused, by HTTP status. */
  readonly upgradesRefused = new Map<number, number>()
  /** Closed connections, by close code (the server's, or the client's when it closed first). */
  readonly closes = new Map<number, number>()
  /** Rejoins with `since`, by outcome. */
  recovered = 0
  notRecovered = 0
}

/** Add one to `key`'s tally. */
export function tally<K> (map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

/** What stats() answers: the counters, and this node's connections and rooms now. */
export function statsOf (counters: Counters, connections: number, rooms: number): RoomsStats {
  return {
    connections,
    rooms,
    messagesIn: counters.messagesIn,
    messagesOut: counters.messagesOut,
    rateLimited: counters.rateLimited,
    rejectedUpgrades: counters.rejectedUpgrades,
    slowConsumersClosed: counters.slowConsumersClosed,
    dropped: counters.dropped
  }
}
