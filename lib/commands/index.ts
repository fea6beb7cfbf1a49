// What a parsed client frame means: the built-in types, one file each, checked by their schema;
// any other type goes to the application's handlers (registry.ts).
import type { Static, TObject } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { Connection } from '../connection.js'
import {
  ChatSchema, type ClientFrameType, compile, isClientFrameType, JoinSchema, LeaveSchema, MembersSchema, RefreshSchema
} from '../protocol/client-frames.js'
import { runApplication } from './application.js'
import type { Command, CommandContext } from './context.js'
import { join } from './join.js'
import { leave } from './leave.js'
import { members } from './members.js'
import { message } from './message.js'
import { refresh } from './refresh.js'

export type { CommandContext } from './context.js'

const SCHEMAS = { join: JoinSchema, leave: LeaveSchema, message: ChatSchema, members: MembersSchema, refresh: RefreshSchema } satisfies Record<ClientFrameType, TObject>

interface CommandEntry<S extends TObject> {
  check: TypeCheck<S>
  run: Command<Static<S>>
}

function entry<S extends TObject> (schema: S, run: Command<Static<S>>): CommandEntry<S> {
  return { check: compile(schema), run }
}

/** The built-in client frame types: one per CLIENT_FRAME_TYPES entry, so the two cannot drift. */
export const BUILTIN: { readonly [T in ClientFrameType]: CommandEntry<typeof SCHEMAS[T]> } = {
  join: entry(SCHEMAS.join, join),
  leave: entry(SCHEMAS.leave, leave),
  message: entry(SCHEMAS.message, message),
  members: entry(SCHEMAS.members, members),
  refresh: entry(SCHEMAS.refresh, refresh)
}

/** Handle one parsed frame. Returns a promise only when it waits. */
export function dispatch (ctx: CommandContext, conn: Connection, frame: Record<string, unknown> & { type: string }): void | Promise<void> {
  const type = frame.type
  if (!isClientFrameType(type)) return runApplication(ctx, conn, frame)
  // The entry of this type: its run takes what its check accepts.
  const { check, run } = BUILTIN[type] as unknown as CommandEntry<TObject>
  if (!check.Check(frame)) {
    ctx.replies.invalid(conn, check, frame)
    return
  }
  return run(ctx, conn, frame)
}
