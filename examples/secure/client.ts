// The secure example's client in Node: fastify-ws-rooms/client over wss://, sending the Origin the
// server allows and trusting its certificate. The token function logs in before every connection
// and before each token expires: the client sends the new token on the live connection (the
// `session` event says until when it now lasts), so the other members see no leave and join. If
// that refresh fails, the server closes with 4001 at expiry and the client comes back at once
// with a fresh token and rejoins its rooms.
//
//   npx tsx examples/secure/server.ts &     then
//   npx tsx examples/secure/client.ts alice  (BASE=https://localhost:8443 by default)
import { request } from 'node:https'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { connect, type RoomsClient } from '../../lib/client/index.js'
import type { ConnectOptions, WebSocketConstructorLike } from '../../types/client.js'
import { isMain } from '../main.js'

export interface SecureClientOptions {
  /** The server's certificate (or its CA), to verify TLS with. */
  ca: Buffer
  /** Sent as Origin; it must be on the server's allowlist. Default: `base` itself. */
  origin?: string
  /** Called with each token the login hands out (to watch refreshes). */
  onToken?: (token: string) => void
  /** Refresh in place ahead of expiry (default), or `false`: reconnect on 4001 instead. */
  refresh?: ConnectOptions['refresh']
}

/** POST /api/token: the demo login. */
export function login (base: string, name: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/api/token', base), { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`login failed: HTTP ${res.statusCode}`))
        else resolve(JSON.parse(text).token)
      })
    })
    req.on('error', reject)
    req.end(JSON.stringify({ name }))
  })
}

/** A rooms client for `base` (https://host:port) that logs in as `name` before every connection. */
export function connectSecure (base: string, name: string, options: SecureClientOptions): RoomsClient {
  const { ca, origin = new URL(base).origin, onToken, refresh } = options
  // `ws` takes TLS and header options; the client only passes (url, protocols).
  class SecureWebSocket extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols, { ca, origin })
    }
  }
  const url = new URL('/ws', base)
  url.protocol = 'wss:'
  return connect(url, {
    WebSocket: SecureWebSocket as WebSocketConstructorLike,
    refresh,
    token: async () => {
      const token = await login(base, name, ca)
      onToken?.(token)
      return token
    }
  })
}

if (isMain(import.meta.url)) {
  const base = process.env.BASE ?? 'https://localhost:8443'
  const ca = readFileSync(fileURLToPath(new URL('cert.pem', import.meta.url)))
  const client = connectSecure(base, process.argv[2] ?? 'alice', { ca })
  client.on('open', ({ user, reconnected }) => { process.stdout.write(`${reconnected ? 'back' : 'connected'} as ${user.id}\n`) })
  client.on('close', ({ code, reason, willReconnect }) => { process.stdout.write(`closed ${code} ${reason}${willReconnect ? ', reconnecting' : ''}\n`) })
  client.on('chat', (m) => { process.stdout.write(`${m.user.id}: ${m.text}\n`) })
  client.on('system', (m) => { if (m.event === 'join' || m.event === 'leave') process.stdout.write(`${m.user.id} ${m.event === 'join' ? 'joined' : 'left'} ${m.room}\n`) })
  client.on('session', ({ expiresAt }) => { process.stdout.write(`token refreshed in place, valid until ${expiresAt === undefined ? 'forever' : new Date(expiresAt).toISOString()}\n`) })
  client.on('error', (err) => { process.stderr.write(`${err.code}: ${err.message}\n`) })
  await client.join('lobby')
  process.once('SIGINT', () => { client.close().then(() => process.exit(0), () => process.exit(1)) })
}
