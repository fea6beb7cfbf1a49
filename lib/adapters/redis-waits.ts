// How long the Redis adapter waits for Redis, per operation, and what each does when the time is up.
// A Redis that stopped answering (a frozen host, a network partition in which TCP may take hours to
// give up) closes nothing and answers nothing, so no call may wait on it without a bound. The
// heartbeat (every presenceTtl / 4) notices such a Redis after two unanswered beats; from then on
// calls do not ask it at all (an outage). The bounds below cover the calls made before that.
//
// In heartbeats (presenceTtl / 4, at least 50 ms). With the default presenceTtl (10 s) one heartbeat is 2.5 s.
const WAITS = {
  /** init (connect, subscribe, a first PING): then `register` fails and what was opened is closed. At least 2 s. */
  connect: 2,
  /** subscribeRoom / subscribeUser, and the counts that size a room's first presence frame: then the join goes on (the channel is subscribed again when Redis is back). */
  subscribe: 1,
  /** publishPresence: then the caller goes on; a diff that fails later is counted as dropped. */
  presenceDiff: 2,
  /** publishUserCommand (disconnectUser, joinUser, leaveUser): then it rejects; the command may still go out if Redis answers later. */
  userCommand: 2,
  /** members() and the size in a members answer: then the members this node knows of, and no cluster-wide count. */
  presenceRead: 2,
  /** A history room's read (a join with `since`, gap repair, history()), or the lookup of an in-doubt publish: then it rejects. */
  historyRead: 2,
  /**
   * A history publish: then it is in doubt (Redis may still run it). It waits up to presenceTtl + 2 s
   * for Redis to be back, looks the publication up (historyRead), and rejects when it cannot tell.
   */
  historyPublish: 2,
  /** Each step of close() (leave presence, QUIT, the sockets' end): then the connection is cut. */
  close: 1
} as const satisfies Record<string, number>

export type Wait = keyof typeof WAITS

/** The smallest wait for init: a first connection may cross a network, whatever the heartbeat. */
const MIN_CONNECT_MS = 2000

export function heartbeatMs (presenceTtl: number): number {
  return Math.max(50, Math.floor(presenceTtl / 4))
}

/** How long `wait` may take with this presenceTtl. */
export function waitMs (wait: Wait, presenceTtl: number): number {
  const ms = WAITS[wait] * heartbeatMs(presenceTtl)
  return wait === 'connect' ? Math.max(ms, MIN_CONNECT_MS) : ms
}
