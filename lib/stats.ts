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
