// RFC 6455 violations from a raw TCP client (test/raw-client.ts does the upgrade by hand): each
// gets the close code `ws` answers (1002 protocol error, 1007 bad UTF-8, 1009 too big, 1003
// binary from the plugin), the connection is cleaned up (its room hears `leave`), and the
// honest clients in the same room go on as if nothing happened.
import t from 'tap'
import { closePayload, encodeFrame, RawClient, type FrameSpec } from './raw-client.js'
import { join, roundTrip, serve, until } from './helpers.js'

interface Violation {
  name: string
  frames: Array<Buffer | FrameSpec>
  code: number
}

const json = (v: unknown): string => JSON.stringify(v)

const violations: Violation[] = [
  { name: 'unmasked client frame', frames: [{ opcode: 1, payload: json({ type: 'leave', room: 'x' }), mask: false }], code: 1002 },
  { name: 'RSV1 set without a negotiated extension', frames: [{ opcode: 1, payload: '{}', rsv: 0b100 }], code: 1002 },
  { name: 'RSV2 set', frames: [{ opcode: 1, payload: '{}', rsv: 0b010 }], code: 1002 },
  { name: 'RSV3 set', frames: [{ opcode: 1, payload: '{}', rsv: 0b001 }], code: 1002 },
  { name: 'reserved data opcode 0x3', frames: [{ opcode: 0x3, payload: 'x' }], code: 1002 },
  { name: 'reserved control opcode 0xB', frames: [{ opcode: 0xb }], code: 1002 },
  { name: 'ping with a 126-byte payload (control frames are at most 125)', frames: [{ opcode: 0x9, payload: Buffer.alloc(126, 1) }], code: 1002 },
  { name: 'close with a 126-byte payload', frames: [{ opcode: 0x8, payload: Buffer.concat([closePayload(1000), Buffer.alloc(124, 0x61)]) }], code: 1002 },
  { name: 'fragmented ping (FIN clear on a control frame)', frames: [{ opcode: 0x9, payload: 'a', fin: false }, { opcode: 0x0, payload: 'b' }], code: 1002 },
  { name: 'continuation frame without a start', frames: [{ opcode: 0x0, payload: 'orphan' }], code: 1002 },
  { name: 'new text frame inside a fragmented message', frames: [{ opcode: 0x1, payload: '{"type":', fin: false }, { opcode: 0x1, payload: '"leave"}' }], code: 1002 },
  { name: 'close frame with a 1-byte payload', frames: [{ opcode: 0x8, payload: Buffer.from([3]) }], code: 1002 },
  { name: 'close frame with a reserved code (1005)', frames: [{ opcode: 0x8, payload: closePayload(1005) }], code: 1002 },
  { name: 'close frame with an out-of-range code (999)', frames: [{ opcode: 0x8, payload: closePayload(999) }], code: 1002 },
  { name: 'payload length with the 64-bit top bits set', frames: [Buffer.from([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])], code: 1009 },
  { name: 'declared length over maxPayload (no body sent)', frames: [Buffer.from([0x81, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0])], code: 1009 },
  { name: 'fragments adding up to more than maxPayload', frames: [{ opcode: 0x1, payload: Buffer.alloc(3000, 0x61), fin: false }, { opcode: 0x0, payload: Buffer.alloc(3000, 0x61) }], code: 1009 },
  { name: 'invalid UTF-8 in a text frame', frames: [{ opcode: 0x1, payload: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]) }], code: 1007 },
  { name: 'invalid UTF-8 split across fragments', frames: [{ opcode: 0x1, payload: Buffer.from([0x22, 0xe2, 0x82]), fin: false }, { opcode: 0x0, payload: Buffer.from([0x41, 0x22]) }], code: 1007 },
  { name: 'overlong UTF-8 encoding of "/"', frames: [{ opcode: 0x1, payload: Buffer.from([0xc0, 0xaf]) }], code: 1007 },
  { name: 'UTF-8 encoded surrogate (U+D800)', frames: [{ opcode: 0x1, payload: Buffer.from([0xed, 0xa0, 0x80]) }], code: 1007 },
  { name: 'close reason that is not UTF-8', frames: [{ opcode: 0x8, payload: Buffer.concat([closePayload(1000), Buffer.from([0xff])]) }], code: 1007 },
  { name: 'binary frame', frames: [{ opcode: 0x2, payload: Buffer.from([1, 2, 3]) }], code: 1003 }
]

t.test('protocol violations: the offender is closed with the right code, the others go on', async (t) => {
  const s = await serve(t, { maxPayload: 4096, rateLimit: false })
  const a = await s.open()
  const b = await s.open()
  await join(a, 'lobby')
  await join(b, 'lobby')
  await a.next({ type: 'system', event: 'join' })
  await b.next({ type: 'system', event: 'join' })
  await a.next({ type: 'system', event: 'join' })
  let chat = 0

  for (const v of violations) {
    await t.test(v.name, async (t) => {
      const raw = await RawClient.connect(s.port)
      t.teardown(() => raw.destroy())
      const welcome = await raw.nextJson((m) => m.type === 'system' && m.event === 'welcome')
      raw.sendText(json({ type: 'join', room: 'lobby', id: 'j' }))
      await raw.nextJson((m) => m.type === 'ack' && m.id === 'j')
      await a.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === welcome.user.id)
      await b.next((m) => m.type === 'system' && m.event === 'join' && m.user.id === welcome.user.id)

      for (const frame of v.frames) raw.send(frame)
      const closed = await raw.closeFrame()
      t.equal(closed.code, v.code, `closed with ${v.code}`)
      await raw.ended

      // Cleaned up: the room heard it leave, the server forgot it.
      const left = await a.next((m) => m.type === 'system' && m.event === 'leave')
      t.equal(left.user.id, welcome.user.id, 'the room hears the offender leave')
      await b.next((m) => m.type === 'system' && m.event === 'leave' && m.user.id === welcome.user.id)
      await until(() => s.app.rooms.stats().connections === 2, 5000, 'the offender to be forgotten')

      // The honest clients are unaffected.
      const text = `after ${v.name} #${++chat}`
      a.send({ type: 'message', room: 'lobby', text, id: `m${chat}` })
      await a.next({ type: 'ack', id: `m${chat}` })
      t.equal((await b.next({ type: 'chat' })).text, text, 'messages still flow between the honest clients')
      await roundTrip(a)
      await roundTrip(b)
    })
  }

  t.same(s.app.rooms.rooms(), [{ room: 'lobby', size: 2 }], 'only the honest members are left')
})

t.test('a valid fragmented message with a ping in the middle is handled', async (t) => {
  // The positive control for the cases above: the same raw client, played by the rules.
  const s = await serve(t)
  const raw = await RawClient.connect(s.port)
  t.teardown(() => raw.destroy())
  await raw.nextJson((m) => m.event === 'welcome')
  raw.send({ opcode: 0x1, payload: '{"type":"join",', fin: false })
  raw.send({ opcode: 0x9, payload: 'mid' })
  raw.send({ opcode: 0x0, payload: '"room":"r",', fin: false })
  raw.send({ opcode: 0x0, payload: '"id":"frag"}' })
  const pong = await raw.next((f) => f.opcode === 0xa)
  t.equal(pong.payload.toString(), 'mid', 'the ping is answered with its payload')
  t.same(await raw.nextJson((m) => m.type === 'ack'), { type: 'ack', id: 'frag' }, 'the reassembled message is acked')
  t.same(s.app.rooms.rooms(), [{ room: 'r', size: 1 }])
  raw.send({ opcode: 0x8, payload: closePayload(1000) })
  t.equal((await raw.closeFrame()).code, 1000, 'a clean close is answered in kind')
  await until(() => s.app.rooms.stats().connections === 0, 5000, 'the connection to be forgotten')
  t.same(s.app.rooms.rooms(), [], 'no room left')
})

t.test('a ping flood from a client that never reads is cut off, the others go on', async (t) => {
  // Pongs queue up server-side while the flooder does not read; ws terminates a connection
  // with too many automatic pongs pending instead of buffering them without bound.
  const s = await serve(t, { rateLimit: false })
  const honest = await s.open()
  await join(honest, 'lobby')
  const raw = await RawClient.connect(s.port)
  t.teardown(() => raw.destroy())
  await raw.nextJson((m) => m.event === 'welcome')
  raw.sendText(json({ type: 'join', room: 'lobby', id: 'j' }))
  await raw.nextJson((m) => m.type === 'ack')
  raw.socket.pause()

  const ping = encodeFrame({ opcode: 0x9, payload: Buffer.alloc(125, 0x70) })
  const burst = Buffer.concat(Array.from({ length: 512 }, () => ping))
  let sent = 0
  // Bounded: at most 256 MB of pings; the server gives up long before.
  for (let i = 0; i < 4096 && !raw.socket.destroyed && s.app.rooms.stats().connections === 2; i++) {
    if (!raw.socket.write(burst)) await new Promise((resolve) => { raw.socket.once('drain', resolve); raw.socket.once('close', resolve) })
    sent += burst.length
  }
  await until(() => s.app.rooms.stats().connections === 1, 10000, 'the flooder to be dropped')
  t.equal(honest.ws.readyState, honest.ws.OPEN, `the flooder was dropped after ${(sent / 1048576).toFixed(1)} MB of pings, the honest client stays`)
  const left = await honest.next({ type: 'system', event: 'leave' })
  t.equal(left.room, 'lobby', 'its room hears it leave')
  await roundTrip(honest)
  t.same(s.app.rooms.rooms(), [{ room: 'lobby', size: 1 }])
})
