// A history room's join that waits on its subscription (the first member on the node) while a
// later join of the same room overtakes it and messages flow: the waiting joiner must get each
// message once, among its recovered messages or after its ack, never also live before its read.
// Found by the history chaos (a connection resumed on a node whose Redis subscribe was slow).
import t from 'tap'
import { connect, gatedAdapter, startServer, type TestClient } from './helpers.js'

type Client = TestClient & { welcome: any }

t.test('a join held on its subscription gets the messages published meanwhile exactly once', async (t) => {
  const { adapter, hold, release } = gatedAdapter()
  const server = await startServer({ authenticate: (token) => ({ id: token }), rateLimit: false, history: { size: 100 }, adapter })
  t.teardown(async () => await server.app.close())
  const clients: Client[] = []
  t.teardown(() => { for (const c of clients) c.ws.terminate() })
  const open = async (user: string): Promise<Client> => {
    const c = await connect(`${server.url}?token=${user}`)
    clients.push(c)
    return c
  }

  // An earlier session: three messages, then the room empties (its history stays).
  const earlier = await open('earlier')
  const { data: position } = await earlier.request({ type: 'join', room: 'h' })
  for (let i = 1; i <= 3; i++) await earlier.request({ type: 'message', room: 'h', text: `old ${i}` })
  await earlier.request({ type: 'leave', room: 'h' })

  // A comes back with since 1; its subscription (the room's first member again) is held.
  hold()
  const a = await open('a')
  a.send({ type: 'join', room: 'h', id: 'a-join', since: { epoch: position.epoch, offset: 1 } })
  await new Promise((resolve) => setTimeout(resolve, 50))
  // B joins the same room meanwhile (no subscription needed now) and publishes.
  const b = await open('b')
  t.equal((await b.request({ type: 'join', room: 'h' })).type, 'ack', 'B joined while A waits')
  t.equal((await b.request({ type: 'message', room: 'h', text: 'new 4' })).data.offset, 4, 'B published offset 4')
  release()
  const ack = await a.next((m) => m.id === 'a-join')
  t.same(ack, { type: 'ack', id: 'a-join', data: { recovered: true, epoch: position.epoch, offset: 4 } }, 'A recovered up to 4')
  b.send({ type: 'message', room: 'h', text: 'new 5' })
  await a.next((m) => m.type === 'chat' && m.text === 'new 5')
  const seen = a.received.filter((m) => m?.type === 'chat').map((m) => m.offset)
  t.same(seen, [2, 3, 4, 5], 'A got 2, 3 and 4 once (recovered), then 5 live')
})
