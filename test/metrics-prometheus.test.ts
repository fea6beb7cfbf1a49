// A real Prometheus scrapes the example chat app's /metrics with the scrape config of
// docs/metrics.md, and its query API answers with the plugin's series: the exposition format
// holds end to end, not only as prom-client writes it.
import t from 'tap'
import { build, tokenFor } from '../examples/chat/server.js'
import { connect, eventually } from './helpers.js'
import { prometheusSkipReason, startPrometheus } from './fixtures/prometheus.js'

const skip = prometheusSkipReason()

t.test('Prometheus scrapes the example app and sees the connections and the frames', { skip }, async (t) => {
  const app = await build({ dbPath: ':memory:', metrics: true })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const ws = `ws://127.0.0.1:${port}/ws`
  const alice = await connect(ws, { protocols: ['rooms.v1', 'bearer.' + tokenFor('alice', 'a'.repeat(32))] })
  const bob = await connect(ws, { protocols: ['rooms.v1', 'bearer.' + tokenFor('bob', 'b'.repeat(32))] })
  t.teardown(() => { alice.ws.terminate(); bob.ws.terminate() })
  t.equal((await alice.request({ type: 'join', room: 'lobby' })).type, 'ack')
  t.equal((await bob.request({ type: 'join', room: 'lobby' })).type, 'ack')
  t.equal((await alice.request({ type: 'post', room: 'lobby', text: 'scraped' })).type, 'ack')

  const prometheus = await startPrometheus(`127.0.0.1:${port}`)
  t.teardown(() => prometheus.stop())

  const value = async (expr: string): Promise<number | undefined> => {
    const result = await prometheus.query(expr)
    return result.length === 1 ? Number(result[0].value[1]) : undefined
  }
  t.equal(await eventually(async () => await value('ws_rooms_connections') === 2 ? 2 : undefined, 'Prometheus to scrape two connections', 20_000, 250), 2)
  t.equal(await value('up{job="ws-rooms"}'), 1, 'the target is up')
  t.equal(await value('ws_rooms_frames_received_total{type="post"}'), 1, 'a counter with its label')
  t.equal(await value('ws_rooms_rooms'), 1)
  t.equal(await value('ws_rooms_handler_duration_seconds_count{type="join"}'), 2, 'the histogram')
})
