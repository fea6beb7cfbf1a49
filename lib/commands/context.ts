// What every command gets: the node's parts it may use, and one place to reply from.
import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from '../connection.js'
import type { Hub } from '../hub.js'
import type { MembersQuery } from '../members-query.js'
import type { RoomsParams } from '../options.js'
import type { Publisher } from '../publish.js'
import type { Counters } from '../stats.js'
import type { HandlerRegistry } from './registry.js'
import type { Replies } from './replies.js'

export interface CommandContext {
  readonly params: RoomsParams
  readonly log: FastifyBaseLogger
  readonly hub: Hub
  readonly publisher: Publisher
  readonly members: MembersQuery
  readonly handlers: HandlerRegistry
  readonly replies: Replies
  readonly counters: Counters
}

/**
 * One client frame type, given a frame its schema accepted. Returns a promise only when it waits
 * (the frame handler holds the connection's later frames until it settles).
 */
export type Command<F> = (ctx: CommandContext, conn: Connection, frame: F) => void | Promise<void>
