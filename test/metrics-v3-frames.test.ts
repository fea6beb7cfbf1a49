// The metrics of what v3 added, through real sockets: refresh frames and their refusals, a
// publish that grants or authorizePublish refuse, and the upgrades a drain turns away with 503.
import { Registry } from 'prom-client'
import { test } from 'tap'
import { connect, refusedUpgrade, serve } from './helpers.js'
import { parseExposition, valueOf } from './metrics-scrape.js'

test('refresh, grants and a drain show in the series', async (t) => {
  const registry = new Registry()
  const server = await serve(t, {
    metrics: { registry },
    allowMissingOrigin: true,
    authenticate: (token) => token === 'bad'
      ? null
      : { user: { id: 'ann' }, grants: { lobby: ['join', 'publish'], news: ['join'] } },
    authorizePublish: (_user, _room, frame) => frame.text !== 'shout'
  })
  const ann = server.track(await connect(`${server.url}?token=good`))
  for (const room of ['lobby', 'news']) t.equal((await ann.request({ type: 'join', room })).type, 'ack', `joined ${room}`)
  t.equal((await ann.request({ type: 'refresh', token: 'good' })).type, 'ack', 'a refresh')
  t.match(await ann.request({ type: 'refresh', token: 'bad' }), { type: 'error', code: 'forbidden' }, 'a refused refresh')
  t.match(await ann.request({ type: 'message', room: 'news', text: 'hi' }), { type: 'error', code: 'forbidden' }, 'no publish grant')
  t.match(await ann.request({ type: 'message', room: 'lobby', text: 'shout' }), { type: 'error', code: 'forbidden' }, 'authorizePublish said no')

  const draining = server.app.rooms.drain({ overMs: 0 })
  const refused = await refusedUpgrade(`${server.url}?token=good`)
  t.equal(refused.status, 503, 'an upgrade during the drain')
  await draining

  const samples = parseExposition(await registry.metrics())
  t.equal(valueOf(samples, 'ws_rooms_frames_received_total', { type: 'refresh' }), 2, 'both refresh frames, under their own type')
  t.equal(valueOf(samples, 'ws_rooms_refused_total', { code: 'forbidden' }), 3, 'the refused refresh and both refused publishes')
  t.equal(valueOf(samples, 'ws_rooms_upgrades_refused_total', { status: '503' }), 1, 'the drain\'s 503')
  t.equal(valueOf(samples, 'ws_rooms_closes_total', { code: '1012' }), 1, 'the drain\'s 1012 close')
})
