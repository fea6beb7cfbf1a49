// A handle() handler can refuse a frame with a contract error code by throwing RoomsError.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import { RoomsError } from '../lib/index.js'
import { connect, startServer } from './helpers.js'

t.test('RoomsError from a handler becomes that error frame, with the id, and nothing is logged as a crash', async (t) => {
  const lines: string[] = []
  const stream = { write: (line: string) => { lines.push(line) } }
  const s = await startServer({}, (app) => {
    app.rooms.handle('post', Type.Object({ room: Type.String() }), (conn, msg) => {
      if (!conn.rooms.has(msg.room)) throw new RoomsError('not_in_room', `Not in room ${msg.room}`)
      return 'saved'
    })
  }, { logger: { level: 'error', stream } })
  t.teardown(() => s.app.close())
  const client = await connect(s.url)
  t.same(await client.request({ type: 'post', room: 'lobby' }, 7), { type: 'error', code: 'not_in_room', text: 'Not in room lobby', id: 7 })
  await client.request({ type: 'join', room: 'lobby' }, 8)
  t.same(await client.request({ type: 'post', room: 'lobby' }, 9), { type: 'ack', id: 9, data: 'saved' })
  t.same(lines.filter((line) => line.includes('handler threw')), [])
  await client.close()
})
