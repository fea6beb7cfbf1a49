// The trace context on the Redis bus: `seq;traceparent` in an 'm' publication. A node of an earlier
// version parses the seq with parseInt(…, 36), which stops at the `;`: it reads the same seq and
// ignores the trace, so nodes of both versions can share a cluster during a rolling upgrade.
import { test } from 'tap'
import { decode, SeqCounter } from '../../lib/adapters/redis-codec.js'

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

test('an m publication carries the traceparent after its seq, and a reader of the old format still reads the seq', (t) => {
  const seq = new SeqCounter('node1')
  seq.envelope('m', 'ch', undefined, '{}')
  const message = seq.envelope('m', 'ch', 'c1', '{"type":"chat"}', TRACEPARENT)
  t.match(decode(message), { kind: 'm', from: 'node1', seq: 2, except: 'c1', body: '{"type":"chat"}', traceparent: TRACEPARENT })
  // What an earlier version's decode did with the seq field.
  const seqField = message.split('\u0000')[1]
  t.equal(parseInt(seqField, 36), 2)
  t.equal(decode(seq.envelope('m', 'ch', undefined, 'x'))!.traceparent, undefined, 'none without a trace')
  t.end()
})
