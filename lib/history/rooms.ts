// Which rooms keep history: the `history` option, normalised once. `keeps` asks the application's
// `history.rooms` chooser; a chooser that throws is logged and the room keeps none.
import type { FastifyBaseLogger } from 'fastify'
import type { HistoryLimits } from '../../types/index.js'
import type { RoomsParams } from '../options.js'

export class HistoryRooms {
  /** The size and age limits of every history room; undefined when history is off. */
  readonly limits: HistoryLimits | undefined
  private readonly choose: ((room: string) => boolean) | undefined
  private readonly log: FastifyBaseLogger

  constructor (option: RoomsParams['history'], log: FastifyBaseLogger) {
    this.limits = option === undefined ? undefined : { size: option.size, ttlMs: option.ttlMs }
    this.choose = option?.rooms
    this.log = log
  }

  keeps (room: string): boolean {
    if (this.limits === undefined) return false
    const choose = this.choose
    if (choose === undefined) return true
    try {
      return choose(room) === true
    } catch (err) {
      this.log.error({ err, room }, 'history.rooms threw; the room keeps no history')
      return false
    }
  }
}
