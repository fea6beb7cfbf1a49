// lib/client/session-refresh.ts on its own: when a refresh is planned (a margin plus jitter ahead
// of expiry, each capped at a quarter of the time left), that a fleet's refreshes spread out, and
// that a stopped or rescheduled plan sends nothing. setTimeout is captured, not waited for.
import t from 'tap'
import { normalizeRefresh, SessionRefresh, type RefreshHost } from '../../lib/client/session-refresh.js'

/** The delays SessionRefresh asked setTimeout for while `fn` ran (the timers are cleared). */
function delaysOf (fn: () => void): number[] {
  const delays: number[] = []
  const original = globalThis.setTimeout
  globalThis.setTimeout = ((callback: () => void, ms: number) => {
    delays.push(ms)
    const timer = original(callback, 2 ** 30)
    clearTimeout(timer)
    return timer
  }) as typeof setTimeout
  try { fn() } finally { globalThis.setTimeout = original }
  return delays
}

const idle: RefreshHost = { token: async () => 't', send: async () => ({}), refreshed: () => {}, failed: () => {} }

t.test('an hour-long session: refreshed 30 to 60 s before expiry, spread across a fleet', async (t) => {
  const now = Date.now()
  const delays = delaysOf(() => {
    for (let i = 0; i < 200; i++) new SessionRefresh(idle, normalizeRefresh(undefined) as any).schedule(now + 3_600_000)
  })
  const ahead = delays.map((d) => now + 3_600_000 - Date.now() - d)
  t.ok(ahead.every((a) => a >= 30_000 - 50 && a <= 60_000 + 50), 'between margin and margin + jitter ahead')
  t.ok(new Set(delays.map((d) => Math.floor(d / 1000))).size > 10, 'spread over the jitter window, not all at once')
})

t.test('a short session: margin and jitter capped at a quarter of the time left each', async (t) => {
  const now = Date.now()
  const [delay] = delaysOf(() => { new SessionRefresh(idle, { marginMs: 30_000, jitterMs: 0 }).schedule(now + 4000) })
  t.ok(delay >= 2900 && delay <= 3000, `refreshed about 1 s ahead of a 4 s session (${delay} ms)`)
  const [half] = delaysOf(() => { new SessionRefresh(idle, { marginMs: 30_000, jitterMs: 30_000 }).schedule(now + 4000) })
  t.ok(half >= 1900 && half <= 3000, 'never earlier than halfway')
})

t.test('no expiresAt, or one already past: nothing planned', async (t) => {
  t.same(delaysOf(() => {
    const r = new SessionRefresh(idle, { marginMs: 1, jitterMs: 1 })
    r.schedule(undefined)
    r.schedule(Date.now() - 1)
    r.schedule('soon')
  }), [])
})

t.test('a refresh started before stop() is dropped: no send, no event', async (t) => {
  let release!: (token: string) => void
  const sent: string[] = []
  const outcomes: string[] = []
  const r = new SessionRefresh({
    token: () => new Promise((resolve) => { release = resolve }),
    send: async (token) => { sent.push(token); return {} },
    refreshed: () => outcomes.push('refreshed'),
    failed: () => outcomes.push('failed')
  }, { marginMs: 0, jitterMs: 0 })
  r.schedule(Date.now() + 20)
  await new Promise((resolve) => setTimeout(resolve, 40))
  r.stop()
  release('late')
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(sent, [])
  t.same(outcomes, [])
})
