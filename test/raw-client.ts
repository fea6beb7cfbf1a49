// A raw WebSocket client over node:net for tests that must send what a real client never
// would: unmasked frames, reserved bits, bad opcodes, oversized or fragmented control frames.
// It does the HTTP upgrade by hand and parses the server's frames itself.
import net from 'node:net'
import { randomBytes } from 'node:crypto'

export interface RawFrame {
  fin: boolean
  rsv: number
  opcode: number
  payload: Buffer
}

export interface FrameSpec {
  opcode: number
  payload?: Buffer | string
  fin?: boolean
  /** RSV1..RSV3 as the three bits 0b100, 0b010, 0b001. */
  rsv?: number
  /** Client frames must be masked; false sends the payload in the clear. */
  mask?: boolean
}

/** Encode one client frame, however wrong the spec asks it to be. */
export function encodeFrame (spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload) : (spec.payload ?? Buffer.alloc(0))
  const mask = spec.mask ?? true
  const length = payload.length
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const header = Buffer.alloc(headerLength + (mask ? 4 : 0))
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)
  const maskBit = mask ? 0x80 : 0
  if (length < 126) {
    header[1] = maskBit | length
  } else if (length < 65536) {
    header[1] = maskBit | 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = maskBit | 127
    header.writeUInt32BE(Math.floor(length / 0x100000000), 2)
    header.writeUInt32BE(length >>> 0, 6)
  }
  if (!mask) return Buffer.concat([header, payload])
  const key = randomBytes(4)
  key.copy(header, headerLength)
  const masked = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) masked[i] = payload[i] ^ key[i & 3]
  return Buffer.concat([header, masked])
}

/** A close frame's payload: the code, then the reason. */
export function closePayload (code: number, reason = ''): Buffer {
  const buf = Buffer.alloc(2 + Buffer.byteLength(reason))
  buf.writeUInt16BE(code, 0)
  buf.write(reason, 2)
  return buf
}

export class RawClient {
  readonly socket: net.Socket
  readonly frames: RawFrame[] = []
  /** Resolves when the TCP connection is gone. */
  readonly ended: Promise<void>
  private buffer: Buffer = Buffer.alloc(0)
  private waiters: Array<() => void> = []

  private constructor (socket: net.Socket, rest: Buffer) {
    this.socket = socket
    this.ended = new Promise((resolve) => socket.once('close', () => { this.wake(); resolve() }))
    socket.on('data', (chunk) => this.onData(chunk))
    if (rest.length > 0) this.onData(rest)
  }

  /** Open a TCP connection, send the upgrade, and resolve once the server answered 101. */
  static async connect (port: number, path = '/ws', headers: Record<string, string> = {}): Promise<RawClient> {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)
    ]
    socket.write(lines.join('\r\n') + '\r\n\r\n')
    const rest = await new Promise<Buffer>((resolve, reject) => {
      let head = Buffer.alloc(0)
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        socket.off('close', onClose)
        const status = head.subarray(0, head.indexOf('\r\n')).toString()
        if (!/^HTTP\/1\.1 101 /.test(status)) {
          socket.destroy()
          reject(new Error(`upgrade refused: ${status}`))
          return
        }
        resolve(head.subarray(end + 4))
      }
      const onClose = (): void => reject(new Error('closed during the upgrade'))
      socket.on('data', onData)
      socket.once('close', onClose)
    })
    return new RawClient(socket, rest)
  }

  send (frame: Buffer | FrameSpec): void {
    this.socket.write(Buffer.isBuffer(frame) ? frame : encodeFrame(frame))
  }

  sendText (text: string): void {
    this.send({ opcode: 1, payload: text })
  }

  /** The next frame (in arrival order) matching `match`; rejects if the connection ends first. */
  async next (match: (f: RawFrame) => boolean = () => true): Promise<RawFrame> {
    for (;;) {
      const i = this.frames.findIndex(match)
      if (i >= 0) return this.frames.splice(i, 1)[0]
      if (this.socket.destroyed) throw new Error('connection ended before a matching frame arrived')
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  /** The next text frame, parsed as JSON. */
  async nextJson (match: (m: any) => boolean = () => true): Promise<any> {
    const frame = await this.next((f) => f.opcode === 1 && match(JSON.parse(f.payload.toString())))
    return JSON.parse(frame.payload.toString())
  }

  /** Wait for the server's close frame, answer it, and return its code and reason. */
  async closeFrame (): Promise<{ code: number, reason: string }> {
    const frame = await this.next((f) => f.opcode === 8)
    const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
    const reason = frame.payload.subarray(2).toString()
    if (!this.socket.destroyed) {
      this.socket.end(encodeFrame({ opcode: 8, payload: frame.payload.subarray(0, 2) }))
    }
    return { code, reason }
  }

  destroy (): void {
    this.socket.destroy()
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  private onData (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (;;) {
      const b = this.buffer
      if (b.length < 2) break
      let length = b[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (b.length < 4) break
        length = b.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (b.length < 10) break
        length = b.readUInt32BE(2) * 0x100000000 + b.readUInt32BE(6)
        offset = 10
      }
      if ((b[1] & 0x80) !== 0) offset += 4 // servers never mask, but parse it if one did
      if (b.length < offset + length) break
      this.frames.push({
        fin: (b[0] & 0x80) !== 0,
        rsv: (b[0] >> 4) & 0x07,
        opcode: b[0] & 0x0f,
        payload: Buffer.from(b.subarray(offset, offset + length))
      })
      this.buffer = b.subarray(offset + length)
    }
    this.wake()
  }
}
