// The `connect`, `disconnect`, `join` and `leave` events of fastify.rooms. Listeners are user
// code: one that throws is logged and must not break the bookkeeping of whoever emitted.
import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import type { RoomsEventName, RoomsEvents as Listeners } from '../types/index.js'

export class RoomsEvents {
  private readonly emitter = new EventEmitter()
  private readonly log: FastifyBaseLogger
  /** `this` in a listener: fastify.rooms (as when it was itself the emitter). */
  private owner: object | undefined

  constructor (log: FastifyBaseLogger) {
    this.log = log
  }

  on<E extends RoomsEventName> (event: E, listener: Listeners[E]): void {
    this.emitter.on(event, listener)
  }

  off<E extends RoomsEventName> (event: E, listener: Listeners[E]): void {
    this.emitter.off(event, listener)
  }

  /** Listeners are called with `owner` as `this`. */
  callListenersOn (owner: object): void {
    this.owner = owner
  }

  listenerCount (event: RoomsEventName): number {
    return this.emitter.listenerCount(event)
  }

  emit (event: RoomsEventName, ...args: unknown[]): void {
    if (this.emitter.listenerCount(event) === 0) return
    try {
      // A copy: a listener that adds or removes listeners changes the next emit, not this one.
      for (const listener of this.emitter.listeners(event)) (listener as (...a: unknown[]) => void).apply(this.owner, args)
    } catch (err) {
      this.log.error({ err, event }, 'a fastify.rooms event listener threw')
    }
  }
}
