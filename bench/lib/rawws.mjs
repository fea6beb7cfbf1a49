// A minimal WebSocket client for the load generator. It speaks just enough RFC 6455 to drive
// a rooms server: the upgrade, masked text frames out (with a zero mask, so the payload bytes
// are written as they are), and a frame walker in that counts text frames by reading their
// headers only. Payloads are looked at only when asked (during setup, on sampling sockets,
// and for control frames). This is what keeps the generator cheaper than the server it
// measures; the `ws` client parses and emits every frame, which costs more than a corked
// server spends producing it.
import net from 'node:net'

const HANDSHAKE_END = Buffer.from('\r\n\r\n')
const KEY = 'YmVuY2gtcmF3LWNsaWVudA=='
const MAX_HANDSHAKE_BYTES = 16384

const OP_TEXT = 1
const OP_CLOSE = 8
const OP_PING = 9

/** Microseconds on the machine-wide monotonic clock (comparable across processes). */
export function nowMicros () {
  return Number(process.hrtime.bigint() / 1000n)
}

/** One masked client frame (FIN set) with a zero mask key. */
export function clientFrame (opcode, payload) {
  const plen = payload.length
  const hl = plen < 126 ? 2 : plen < 65536 ? 4 : 10
  const buf = Buffer.allocUnsafe(hl + 4 + plen)
  buf[0] = 0x80 | opcode
  if (plen < 126) {
    buf[1] = 0x80 | plen
  } else if (plen < 65536) {
    buf[1] = 0x80 | 126
    buf.writeUInt16BE(plen, 2)
  } else {
    buf[1] = 0x80 | 127
    buf.writeUInt32BE(0, 2)
    buf.writeUInt32BE(plen, 6)
  }
  buf.writeUInt32BE(0, hl)
  payload.copy(buf, hl + 4)
  return buf
}

/**
 * @typedef {object} RawClientOptions
 * @property {number} port
 * @property {string} path   request path with query, e.g. `/ws?token=u1`
 * @property {{ frames: number }} counter  text frames are counted here
 * @property {(client: RawClient, payload: Buffer) => void} [onText] called for text frames while `inspect` is true
 * @property {(client: RawClient, code: number) => void} [onClose]
 */
export class RawClient {
  /** @param {RawClientOptions} options */
  constructor (options) {
    this.port = options.port
    this.path = options.path
    this.counter = options.counter
    this.onText = options.onText ?? null
    this.onClose = options.onClose ?? null
    /** When true, text frame payloads are gathered and handed to `onText`. */
    this.inspect = true
    this.socket = null
    this.upgraded = false
    this.closed = false
    this.closeCode = 0
    this.handshake = null
    // frame walker state
    this.head = null
    this.need = 0
    this.opcode = 0
    this.collect = false
    this.parts = []
    this.tag = null
  }

  /** Connect and upgrade. Resolves once the server answered 101; rejects with the HTTP status otherwise. */
  open (timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: this.port, noDelay: true })
      this.socket = socket
      let settled = false
      const timer = setTimeout(() => fail(new Error('upgrade timed out')), timeoutMs)
      const fail = (err) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.destroy()
        reject(err)
      }
      socket.on('connect', () => {
        socket.write(`GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\n` +
          `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n')
      })
      socket.on('error', (err) => {
        if (!settled) fail(err)
      })
      socket.on('close', () => {
        if (!settled) fail(new Error('socket closed during upgrade'))
        this._closed(this.closeCode || 1006)
      })
      socket.on('data', (chunk) => {
        if (this.upgraded) {
          this._onData(chunk)
          return
        }
        this.handshake = this.handshake === null ? chunk : Buffer.concat([this.handshake, chunk])
        const end = this.handshake.indexOf(HANDSHAKE_END)
        if (end === -1) {
          if (this.handshake.length > MAX_HANDSHAKE_BYTES) fail(new Error('oversized handshake response'))
          return
        }
        const head = this.handshake.toString('latin1', 0, end)
        const rest = this.handshake.subarray(end + 4)
        this.handshake = null
        const status = Number(head.slice(9, 12))
        if (status !== 101) {
          const err = new Error(`upgrade refused with HTTP ${status}`)
          err.status = status
          fail(err)
          return
        }
        this.upgraded = true
        settled = true
        clearTimeout(timer)
        resolve(this)
        if (rest.length > 0) this._onData(rest)
      })
    })
  }

  sendText (text) {
    if (this.closed) return false
    return this.socket.write(clientFrame(OP_TEXT, Buffer.from(text)))
  }

  /** Close without the closing handshake (the bench tears down many sockets at once). */
  destroy () {
    if (this.socket !== null) this.socket.destroy()
  }

  /** Polite close: a close frame, then end. */
  end (code = 1000) {
    if (this.closed || this.socket === null) return
    const payload = Buffer.allocUnsafe(2)
    payload.writeUInt16BE(code, 0)
    this.socket.end(clientFrame(OP_CLOSE, payload))
  }

  _closed (code) {
    if (this.closed) return
    this.closed = true
    this.closeCode = code
    if (this.onClose !== null) this.onClose(this, code)
  }

  _onData (chunk) {
    if (this.head !== null) {
      chunk = Buffer.concat([this.head, chunk])
      this.head = null
    }
    const len = chunk.length
    let off = 0
    while (off < len) {
      if (this.need > 0) {
        const n = Math.min(this.need, len - off)
        if (this.collect) this.parts.push(chunk.subarray(off, off + n))
        this.need -= n
        off += n
        if (this.need === 0 && this.collect) this._frame()
        continue
      }
      const avail = len - off
      if (avail < 2) {
        this.head = chunk.subarray(off)
        return
      }
      const op = chunk[off] & 0x0f
      let plen = chunk[off + 1] & 0x7f
      let hl = 2
      if (plen === 126) {
        if (avail < 4) {
          this.head = chunk.subarray(off)
          return
        }
        plen = chunk.readUInt16BE(off + 2)
        hl = 4
      } else if (plen === 127) {
        if (avail < 10) {
          this.head = chunk.subarray(off)
          return
        }
        plen = chunk.readUInt32BE(off + 2) * 4294967296 + chunk.readUInt32BE(off + 6)
        hl = 10
      }
      off += hl
      if (op === OP_TEXT) {
        this.counter.frames++
        this.collect = this.inspect
      } else {
        this.collect = op >= OP_CLOSE
      }
      this.opcode = op
      this.need = plen
      if (plen === 0 && this.collect) this._frame()
    }
  }

  _frame () {
    const parts = this.parts
    const payload = parts.length === 1 ? parts[0] : Buffer.concat(parts)
    this.parts = []
    const op = this.opcode
    if (op === OP_TEXT) {
      if (this.onText !== null) this.onText(this, payload)
    } else if (op === OP_PING) {
      if (!this.closed) this.socket.write(clientFrame(0x0a, payload))
    } else if (op === OP_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
      this.closeCode = code
      if (!this.closed) {
        this.socket.end(clientFrame(OP_CLOSE, payload.subarray(0, 2)))
        this._closed(code)
      }
    }
  }
}
