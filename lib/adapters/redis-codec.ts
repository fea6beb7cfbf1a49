// The Redis adapter's wire format between nodes, and its loss accounting. Clients never see it:
// their frames are in docs/protocol.md; this is how one node's publication reaches the others. One
// publication is one message on a channel: a kind letter, then fields separated by NUL, the last
// one the body as it is (a payload the node serialized once is forwarded without being parsed):
//
//   m nodeId \0 seq \0 except \0 payload      a message (broadcast, chat, sendToUser, broadcastAll)
//   p nodeId \0 seq \0 \0 diff JSON           a room's joins and leaves on that node (docs/presence.md)
//   c nodeId \0 seq \0 \0 command JSON        a user command (disconnectUser, joinUser, leaveUser)
//   h epoch \0 offset \0 except \0 payload    a history room's message (docs/history.md), published by
//                                             Redis itself (PUBLISH_HISTORY_BATCH), in offset order
//   g nodeId \0 0 \0 \0 diff JSON             the members of a node that died, as left (count 0),
//                                             published by Redis itself (the PURGE_DEAD_NODE script)
//   b epoch \0 first \0 \0 except \0 payload \0 except \0 payload ...
//                                             a history room's messages of one node's tick, offsets
//                                             first, first + 1, ... (PUBLISH_HISTORY_BATCH). No field
//                                             holds a NUL: payloads are JSON text (control characters
//                                             escaped), and the API drops an except that holds one
//
// An 'm' publication made inside a traced span carries its W3C traceparent after the seq, as
// `seq;traceparent`, so the receiving node can link its delivery to it (docs/metrics.md). A node
// of an earlier version reads the seq with parseInt, which stops at the `;`: it ignores the trace.
//
// `seq` counts one node's publications per channel. A receiver that sees a publisher's seq jump
// (it was resubscribing while that publisher was already back) counts the gap as dropped; history
// messages are accounted for by their offsets instead (the room's stream repairs them), and a dead
// node's leaves are published once, whoever found it dead, so they carry no seq.
//
// A diff's JSON is `{"count":N,"changes":[[joined 1|0, connectionId, user], ...]}`; the
// PURGE_DEAD_NODE script writes the same shape in Lua.
import type { PresenceChange, PresenceDiff } from '../../types/index.js'

export const SEP = '\u0000'

/** Per-channel publish counters kept before starting over (receivers treat a lower seq as a restart). */
const MAX_SEQ_STREAMS = 100_000

export type Kind = 'm' | 'p' | 'c' | 'h' | 'g' | 'b'

export interface Envelope {
  kind: Kind
  /** The publishing node (m, p, c), the room's epoch (h) or the node that died (g). */
  from: string
  /** seq (m, p, c), offset (h), first offset (b) or 0 (g). */
  seq: number
  except: string | undefined
  body: string
  /** The publisher's trace context ('m' only), when it sent one. */
  traceparent?: string
}

export function decode (message: string): Envelope | undefined {
  const kind = message[0]
  if (kind !== 'm' && kind !== 'p' && kind !== 'c' && kind !== 'h' && kind !== 'g' && kind !== 'b') return undefined
  const a = message.indexOf(SEP, 1)
  const b = message.indexOf(SEP, a + 1)
  const c = message.indexOf(SEP, b + 1)
  if (a <= 1 || b < 0 || c < 0) return undefined
  const seqField = message.slice(a + 1, b)
  const seq = kind === 'h' || kind === 'b' ? Number(seqField) : parseInt(seqField, 36)
  if (!Number.isSafeInteger(seq)) return undefined
  const envelope: Envelope = {
    kind,
    from: message.slice(1, a),
    seq,
    except: c > b + 1 ? message.slice(b + 1, c) : undefined,
    body: message.slice(c + 1)
  }
  const trace = kind === 'm' ? seqField.indexOf(';') : -1
  if (trace !== -1) envelope.traceparent = seqField.slice(trace + 1)
  return envelope
}

/** The (except, payload) pairs of a `b` body, in offset order; undefined when it is not one. */
export function splitBatch (body: string): Array<{ except: string | undefined, payload: string }> | undefined {
  const fields = body.split(SEP)
  if (fields.length < 2 || fields.length % 2 !== 0) return undefined
  const out: Array<{ except: string | undefined, payload: string }> = []
  for (let i = 0; i < fields.length; i += 2) out.push({ except: fields[i] === '' ? undefined : fields[i], payload: fields[i + 1] })
  return out
}

/** A presence diff as it travels between nodes ('p' and 'g' bodies). */
export function encodeDiff (diff: PresenceDiff): string {
  return JSON.stringify({ count: diff.count, changes: diff.changes.map((c) => [c.joined ? 1 : 0, c.connectionId, c.user]) })
}

/** The diff in a 'p' or 'g' body; undefined when it is not one (nothing to deliver). */
export function parseDiff (body: string): PresenceDiff | undefined {
  try {
    const { count, changes } = JSON.parse(body) as { count: number, changes: Array<[number, string, PresenceChange['user']]> }
    return { count, changes: changes.map(([joined, connectionId, user]) => ({ joined: joined === 1, connectionId, user })) }
  } catch {
    return undefined
  }
}

/** Numbers this node's publications per channel, and spots gaps in everyone else's. */
export class SeqCounter {
  private readonly nodeId: string
  /** Our last seq per channel. */
  private readonly sent = new Map<string, number>()
  /** Last seq seen per channel, per publishing node. */
  private readonly seen = new Map<string, Map<string, number>>()

  constructor (nodeId: string) {
    this.nodeId = nodeId
  }

  /** The message to publish on `channel`, with this node's next seq for it. */
  envelope (kind: 'm' | 'p' | 'c', channel: string, except: string | undefined, body: string, traceparent?: string): string {
    let seq = (this.sent.get(channel) ?? 0) + 1
    if (seq === 1 && this.sent.size >= MAX_SEQ_STREAMS) this.sent.clear()
    else if (seq > Number.MAX_SAFE_INTEGER - 1) seq = 1
    this.sent.set(channel, seq)
    const seqField = traceparent === undefined ? seq.toString(36) : seq.toString(36) + ';' + traceparent
    return kind + this.nodeId + SEP + seqField + SEP + (except ?? '') + SEP + body
  }

  /**
   * How many of `from`'s publications on `channel` went missing before this one (0 when none), or
   * -1 when it is older than one already received: a publication a Redis Cluster client retried
   * after a failover, arriving after later ones. It was counted in the gap; delivering it now would
   * break the publisher's order. Seq 1 is a publisher starting its count again, never stale.
   */
  received (channel: string, from: string, seq: number): number {
    let streams = this.seen.get(channel)
    if (streams === undefined) {
      streams = new Map()
      this.seen.set(channel, streams)
    }
    const last = streams.get(from)
    if (last !== undefined && seq <= last && seq !== 1) return -1
    streams.set(from, seq)
    return last !== undefined && seq > last + 1 ? seq - last - 1 : 0
  }

  /** A fresh subscription: what came before it is not ours to count. */
  forget (channel: string): void {
    this.seen.delete(channel)
  }
}
