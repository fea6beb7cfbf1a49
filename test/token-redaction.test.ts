// CONTRACT §3: "The token never appears in any log line", checked where it is most likely to leak:
// an `authenticate` that fails with the token in its error (an Error thrown or rejected, whose
// message and stack hold it, or a bare string rejected), and the route's request log line, whose
// URL carries `?token=`. For each way of passing a token (query, `Authorization: Bearer`, the
// `bearer.<token>` subprotocol), with Fastify logging at `trace` into memory.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { captureLogs, closedWithin, connect, join, refusedUpgrade, serve, type CapturedLogs } from './helpers.js'

type Transport = 'query' | 'header' | 'protocol'
type Outcome = 'accept' | 'throw' | 'reject-error' | 'reject-string'

/** A token unlike anything else in the logs: the outcome, the transport and 12 random hex digits. */
function tokenFor (outcome: Outcome, transport: Transport): string {
  return `${outcome}.${transport}.${randomBytes(6).toString('hex')}`
}

/** What `authenticate` does with a token is written in it. */
function authenticate (token: string): { id: string } | null | Promise<{ id: string } | null> {
  const outcome = token.split('.')[0] as Outcome
  if (outcome === 'throw') throw new TypeError(`no session for ${token}`)
  if (outcome === 'reject-error') return Promise.reject(new Error(`session store refused ${token}`))
  // eslint-disable-next-line prefer-promise-reject-errors -- a rejection that is not an Error is the case under test
  if (outcome === 'reject-string') return Promise.reject(`bad token ${token}`)
  return { id: 'alice' }
}

/** The client options that carry `token` by `transport`; the path is the URL's. */
function carry (token: string, transport: Transport): { path: string, headers?: Record<string, string>, protocols?: string[] } {
  if (transport === 'query') return { path: `/ws?token=${token}` }
  if (transport === 'header') return { path: '/ws', headers: { authorization: `Bearer ${token}` } }
  return { path: '/ws', protocols: ['rooms.v1', `bearer.${token}`] }
}

/** The log records written from `from` on (parsed). */
function recordsFrom (logs: CapturedLogs, from: number): any[] {
  return logs.records().slice(from)
}

/** What the route logged about the failure, redacted: { type, message, stack? } as written. */
const expectedFailure: Record<Exclude<Outcome, 'accept'>, { type?: string, message: string }> = {
  throw: { type: 'TypeError', message: 'no session for [redacted]' },
  'reject-error': { type: 'Error', message: 'session store refused [redacted]' },
  'reject-string': { message: 'bad token [redacted]' }
}

t.test('a failing authenticate is logged without the token, and the request line has ?token= cut', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, { authenticate }, undefined, { logger: { level: 'trace', stream: logs.stream } })
  const used: string[] = []

  for (const transport of ['query', 'header', 'protocol'] as const) {
    for (const outcome of ['throw', 'reject-error', 'reject-string'] as const) {
      const token = tokenFor(outcome, transport)
      used.push(token)
      const { path, ...options } = carry(token, transport)
      const from = logs.lines.length
      const refused = await refusedUpgrade(s.base + path, options)
      t.equal(refused.status, 403, `${transport}, ${outcome}: 403`)
      const records = recordsFrom(logs, from)

      const failures = records.filter((r) => r.msg === 'authenticate threw; upgrade refused')
      t.equal(failures.length, 1, `${transport}, ${outcome}: the failure is logged once`)
      const err = failures[0]?.err
      const want = expectedFailure[outcome]
      t.equal(err?.message, want.message, `${transport}, ${outcome}: the logged message has the token cut out`)
      if (want.type !== undefined) {
        // The stack starts with "<name>: <message>": the token was in it too.
        t.match(err?.stack, new RegExp(`^${want.type}: ${want.message.replace(/[[\]]/g, '\\$&')}\\n\\s+at `), `${transport}, ${outcome}: the stack is kept, the token cut from it`)
        t.equal(err?.type, want.type, `${transport}, ${outcome}: the error type is kept`)
      } else {
        t.equal(err?.stack ?? '', '', `${transport}, ${outcome}: a string rejection has no stack to log`)
      }

      const incoming = records.filter((r) => r.msg === 'incoming request')
      t.equal(incoming.length, 1, `${transport}, ${outcome}: one request line`)
      t.equal(incoming[0]?.req?.url, transport === 'query' ? '/ws?token=%5Bredacted%5D' : '/ws', `${transport}, ${outcome}: the request line's URL`)
      t.same(logs.lines.slice(from).filter((l) => l.includes(token)), [], `${transport}, ${outcome}: no log line has the token`)
    }
  }

  // Accepted tokens, used for a while: no line about the connection has them either.
  for (const transport of ['query', 'header', 'protocol'] as const) {
    const token = tokenFor('accept', transport)
    used.push(token)
    const from = logs.lines.length
    const client = await s.open(carry(token, transport))
    t.equal(client.welcome.user.id, 'alice', `${transport}: accepted`)
    await join(client, 'r')
    client.send('not json')
    await client.next({ type: 'error' })
    // Invalid UTF-8: ws closes with 1007 and the plugin logs the socket error at debug level.
    client.ws.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false })
    t.equal((await closedWithin(client)).code, 1007, `${transport}: a protocol error closes the connection`)
    const incoming = recordsFrom(logs, from).filter((r) => r.msg === 'incoming request')
    t.equal(incoming[0]?.req?.url, transport === 'query' ? '/ws?token=%5Bredacted%5D' : '/ws', `${transport}, accepted: the request line's URL`)
  }
  await s.app.close()

  t.equal(logs.records().filter((r) => r.level === 20 && r.msg === 'WebSocket error').length, 3, 'the debug lines were written (one per protocol error)')
  t.same(logs.lines.filter((l) => used.some((token) => l.includes(token))), [], `none of the ${logs.lines.length} log lines, at any level, has any of the ${used.length} tokens`)
  // Nor their random part alone (a token logged in pieces, or encoded, still leaks it).
  const secrets = used.map((token) => token.split('.')[2])
  t.same(logs.lines.filter((l) => secrets.some((secret) => l.includes(secret))), [], 'nor the secret part of any token')
})

t.test('a token that is percent-encoded in the URL is cut from the request line and from the error', async (t) => {
  const logs = captureLogs()
  const s = await serve(t, { authenticate }, undefined, { logger: { level: 'trace', stream: logs.stream } })
  // "/", "+" and "=" travel encoded; the server sees the decoded token.
  const secret = randomBytes(6).toString('hex')
  const token = `throw.query.${secret}/+=`
  const refused = await refusedUpgrade(`${s.url}?token=${encodeURIComponent(token)}&lang=en`)
  t.equal(refused.status, 403)
  const records = logs.records()
  t.equal(records.find((r) => r.msg === 'incoming request')?.req?.url, '/ws?token=%5Bredacted%5D&lang=en', 'the other query parameters stay')
  t.equal(records.find((r) => r.msg === 'authenticate threw; upgrade refused')?.err?.message, 'no session for [redacted]')
  t.same(logs.lines.filter((l) => l.includes(secret)), [], 'no line has the token, encoded or not')
  await s.app.close()
  // Still works for the next client: the redaction did not touch what authenticate was given.
  const s2 = await serve(t, { authenticate: (given) => ({ id: given === `accept.query.${secret}/+=` ? 'decoded' : 'other' }) })
  const client = s2.track(await connect(`${s2.url}?token=${encodeURIComponent(`accept.query.${secret}/+=`)}`))
  t.equal(client.welcome.user.id, 'decoded', 'authenticate got the decoded token')
})
