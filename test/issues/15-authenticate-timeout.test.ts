// Issue 15: an `authenticate` call that never settles kept its maxPendingAuthentications slot
// forever, so a hung auth backend turned every later upgrade into 503 until a restart. With
// `authenticateTimeout` the upgrade is refused with 503 when the time is up, the slot is freed,
// and the late result is ignored.
import t from 'tap'
import { connect, captureLogs, refusedUpgrade, serve } from '../helpers.js'

t.test('a hung authenticate is refused with 503 after authenticateTimeout and frees its slot', async (t) => {
  const hung: Array<(user: { id: string } | null) => void> = []
  const logs = captureLogs()
  const s = await serve(t, {
    maxPendingAuthentications: 2,
    authenticateTimeout: 300,
    authenticate: (token) => token === 'hang'
      ? new Promise((resolve) => { hung.push(resolve) })
      : { id: token }
  }, undefined, { logger: { level: 'warn', stream: logs.stream } })

  const started = Date.now()
  const refusals = await Promise.all([refusedUpgrade(`${s.url}?token=hang`), refusedUpgrade(`${s.url}?token=hang`)])
  const took = Date.now() - started
  for (const r of refusals) {
    t.equal(r.status, 503)
    t.equal(r.body.code, 'FST_WS_ROOMS_AUTHENTICATION_TIMEOUT')
    t.equal(r.body.message, 'Authentication timed out')
  }
  t.ok(took >= 290 && took < 3000, `refused after ${took} ms (authenticateTimeout 300 ms)`)
  t.equal(hung.length, 2, 'both calls were made and never settled')

  // The slots are free again: a good token gets in while the hung calls are still hanging.
  const client = s.track(await connect(`${s.url}?token=alice`))
  t.equal(client.welcome.user.id, 'alice')

  // A late answer for a refused upgrade changes nothing and breaks nothing.
  for (const resolve of hung) resolve({ id: 'late' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(s.app.rooms.stats().connections, 1, 'the late results opened no connection')
  t.equal(s.app.rooms.stats().rejectedUpgrades, 2)
  t.equal(logs.records().filter((r) => r.msg.includes('authenticateTimeout')).length, 2, 'each timeout logged once')
  t.notOk(logs.lines.some((l) => l.includes('hang')), 'the token is in no log line')
})

t.test('authenticateTimeout: 0 waits as long as authenticate takes', async (t) => {
  const s = await serve(t, {
    authenticateTimeout: 0,
    authenticate: async (token) => await new Promise((resolve) => setTimeout(() => resolve({ id: token }), 400))
  })
  const client = s.track(await connect(`${s.url}?token=slow`))
  t.equal(client.welcome.user.id, 'slow')
})

t.test('a bad authenticateTimeout fails register naming it', async (t) => {
  for (const bad of [-1, 1.5, '10', null]) {
    await t.rejects(serve(t, { authenticateTimeout: bad as never }), { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /"authenticateTimeout"/ })
  }
})
