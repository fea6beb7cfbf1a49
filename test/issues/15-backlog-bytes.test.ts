// Issue 15: while one frame waits on async work (a slow authorizeJoin, an async handler), the
// frames behind it were bounded in number (1024) but not in bytes: up to 1024 × maxPayload
// (64 MiB per connection with rateLimit: false), kept even after the connection closed. Now their
// bytes are bounded by maxBacklogBytes (default 16 × maxPayload): past it, close 1008, backlog dropped.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import { closedWithin, connect, join, serve } from '../helpers.js'
import type { RoomConnection } from '../../types/index.js'

const maxPayload = 8192

t.test('frames waiting behind a slow join are bounded in bytes: 1008, and the backlog is dropped', async (t) => {
  let release: (() => void) | undefined
  let seen: RoomConnection | undefined
  const s = await serve(t, {
    maxPayload,
    rateLimit: false,
    authorizeJoin: async (_user, room) => {
      if (room === 'slow') await new Promise<void>((resolve) => { release = resolve })
      return true
    }
  }, (app) => { app.rooms.on('connect', (conn) => { seen = conn }) })
  const bystander = await s.open()
  await join(bystander, 'lobby')

  const client = await s.open()
  client.send({ type: 'join', room: 'slow', id: 'slow' })
  const frame = JSON.stringify({ type: 'message', room: 'lobby', text: 'y'.repeat(maxPayload - 100) })
  // 16 × maxPayload fit (default maxBacklogBytes); the frames after that do not.
  for (let i = 0; i < 20; i++) client.send(frame)
  const closed = await closedWithin(client)
  t.equal(closed.code, 1008)
  t.equal(closed.reason, 'Too many frames waiting')
  t.equal((seen as any).backlog, null, 'the waiting frames are dropped with the connection')
  t.equal((seen as any).backlogBytes, 0)
  release?.()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(s.app.rooms.stats().connections, 1, 'only the bystander is left')
  // The other connection was served throughout.
  t.same((await bystander.request({ type: 'leave', room: 'lobby' }, 'l')).type, 'ack')
})

t.test('under the bound, frames waiting behind an async handler are all handled, in order', async (t) => {
  let release: (() => void) | undefined
  const s = await serve(t, { maxPayload, rateLimit: false, maxBacklogBytes: 4 * maxPayload }, (app) => {
    app.rooms.handle('wait', Type.Object({}), async () => { await new Promise<void>((resolve) => { release = resolve }); return 'waited' })
  })
  const client = await s.open()
  await join(client, 'r')
  client.send({ type: 'wait', id: 'w' })
  const text = 'z'.repeat(maxPayload - 200)
  for (let i = 0; i < 3; i++) client.send({ type: 'message', room: 'r', text, id: i })
  await new Promise((resolve) => setTimeout(resolve, 50))
  release?.()
  const answers = [await client.next({ type: 'ack' }), await client.next({ type: 'ack' }), await client.next({ type: 'ack' }), await client.next({ type: 'ack' })]
  t.same(answers.map((a) => a.id), ['w', 0, 1, 2], 'every waiting frame was handled in order')
  t.equal(answers[0].data, 'waited')
})

t.test('maxBacklogBytes: a smaller bound closes sooner', async (t) => {
  let release: (() => void) | undefined
  const s = await serve(t, { rateLimit: false, maxBacklogBytes: 1000 }, (app) => {
    app.rooms.handle('wait', Type.Object({}), async () => { await new Promise<void>((resolve) => { release = resolve }) })
  })
  t.teardown(() => release?.())
  const client = await connect(s.url)
  s.track(client)
  client.send({ type: 'wait', id: 'w' })
  client.send({ type: 'message', room: 'r', text: 'a'.repeat(600) })
  client.send({ type: 'message', room: 'r', text: 'a'.repeat(600) })
  t.equal((await closedWithin(client)).code, 1008)
})
