// wss:// done properly: TLS, an Origin allowlist (against Cross-Site WebSocket Hijacking), and a
// signed, expiring token checked before the upgrade; the plugin's payload, rate and idle limits
// are spelled out. Tokens come from a demo login; cookies are never trusted for the socket.
// Tokens are short-lived (10 minutes) and carry what their holder may do (grants): its own
// `user:<id>` room and `lobby` to read and write, `announcements` to read only. Before a token
// expires the client (client.ts here) logs in again and hands the new token to the live
// connection (a `refresh` frame): same connection, same rooms, and nobody sees it leave and
// join. A connection that does not refresh in time is closed with 4001 at the token's expiry.
//
//   npx tsx examples/secure/server.ts      (PORT=8443 by default; creates key.pem/cert.pem here
//                                           on first run if openssl is installed)
//   curl -k -X POST https://localhost:8443/api/token -H 'content-type: application/json' -d '{"name":"alice"}'
//   npx tsx examples/secure/client.ts alice   (logs in, joins "lobby", prints what arrives)
//   open https://localhost:8443/page?name=bob  (the same in a page; TOKEN_TTL=60 to watch refreshes)
//
// A client passes the token in one of three places (the plugin reads them in this order):
//   new WebSocket(`wss://localhost:8443/ws?token=${token}`)              query: ends up in access logs
//   new WebSocket(url, { headers: { authorization: `Bearer ${token}` } }) non-browser clients
//   new WebSocket('wss://localhost:8443/ws', ['rooms.v1', `bearer.${token}`])
//     the browser way to keep the token out of the URL: offered as a subprotocol beside
//     `rooms.v1`, which is the one the server answers with.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { Server } from 'node:https'
import wsRooms from '../../lib/index.js'
import { isMain, listenUntilSignalled } from '../main.js'
import type { WsRoomsOptions } from '../../types/index.js'
import { servePage } from './page.js'
import { loadOrCreateCertificate } from './tls.js'
import { signToken, verifyToken } from './token.js'

export { signToken, verifyToken, type TokenClaims, type SignOptions } from './token.js'
export { loadOrCreateCertificate, type Certificate } from './tls.js'

export interface SecureOptions {
  /** Where key.pem and cert.pem are read from, or generated into. Default: this folder. */
  certDir?: string
  /**
   * Origins allowed to open a socket (exact `scheme://host:port` strings). Default:
   * https://localhost, https://127.0.0.1 and https://[::1] on the port the server listens on.
   */
  allowedOrigins?: string[]
  /** HMAC key for tokens (at least 32 bytes). Default: $TOKEN_SECRET, else random per process. */
  tokenSecret?: string | Buffer
  /** Token lifetime in seconds. Default 600: short, since clients refresh in place. */
  tokenTtl?: number
  /** Fastify's logger option. Default `false` (the CLI entry below turns it on). */
  logger?: FastifyServerOptions['logger']
  /** The built browser client the page imports (under /client/). Default: dist/esm/client. */
  clientDir?: string
  /** Further plugin options (limits, path, ...); authentication and origins are set here. */
  rooms?: Omit<WsRoomsOptions, 'authenticate' | 'allowedOrigins'>
}

export type SecureApp = FastifyInstance<Server>

const here = fileURLToPath(new URL('.', import.meta.url))

export const TokenRequest = Type.Object({
  // Demo login: anyone may take any name. A real app checks a password or an SSO session here.
  name: Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9_-]+$' })
}, { additionalProperties: false })

export async function build (options: SecureOptions = {}): Promise<SecureApp> {
  const { key, cert, generated, certPath } = await loadOrCreateCertificate(options.certDir ?? here)
  const app = Fastify({ https: { key, cert }, logger: options.logger ?? false })
  if (generated) app.log.info({ certPath }, 'generated a self-signed certificate for localhost')

  let secret = options.tokenSecret ?? process.env.TOKEN_SECRET
  if (secret === undefined) {
    secret = randomBytes(32)
    app.log.warn('TOKEN_SECRET is not set: using a random secret, tokens stop working when this process ends')
  }
  const tokenSecret = secret
  const tokenTtl = options.tokenTtl ?? 600
  // Fail at startup, not at the first login, on a short secret or a bad ttl.
  verifyToken(signToken('startup-check', tokenSecret, tokenTtl), tokenSecret)

  // The default allowlist follows the port actually bound, so `port: 0` (tests) works too.
  let listeningOrigins: Set<string> | undefined
  const defaultOrigins = (origin: string | undefined): boolean => {
    if (listeningOrigins === undefined) {
      const address = app.server.address()
      if (address === null || typeof address === 'string') return false
      const port = address.port
      listeningOrigins = new Set([`https://localhost:${port}`, `https://127.0.0.1:${port}`, `https://[::1]:${port}`])
    }
    return origin !== undefined && listeningOrigins.has(origin)
  }

  await app.register(wsRooms, {
    // The tutorial's limits, as options (these are also the plugin's defaults).
    maxPayload: 64 * 1024, // larger frames close the socket with 1009
    rateLimit: { max: 100, windowMs: 10_000 }, // per connection; beyond 2×max the socket is closed with 1008
    idleTimeout: 60_000, // pinged every 30 s, dropped after 60 s of silence
    ...options.rooms,
    // A browser always sends Origin; an attacker's page cannot forge it. Requests without one
    // (non-browser clients) are refused too: this is a browser-facing example.
    allowedOrigins: options.allowedOrigins ?? defaultOrigins,
    // `expiresAt`: the session ends with the token (close 4001 "Token expired") unless the client
    // refreshes it first, so a revoked login does not keep a socket open for long. The same
    // function checks the tokens of `refresh` frames: a refresh must be for the same user.
    // `grants`: `user:<id>` rooms are private to that user, `announcements` is read-only (only
    // the server posts there, with app.rooms.broadcast); anything else is `forbidden`.
    authenticate: (token) => {
      const claims = verifyToken(token, tokenSecret)
      if (claims === null) return null
      return {
        user: { id: claims.sub, name: claims.name ?? claims.sub },
        expiresAt: claims.exp * 1000,
        grants: { lobby: ['join', 'publish'], [`user:${claims.sub}`]: ['join', 'publish'], announcements: ['join'] }
      }
    }
  })

  app.get('/', async (_request, reply) => {
    return reply.type('text/plain; charset=utf-8').send('WebSocket server running')
  })

  // The lobby page (open https://localhost:8443/page?name=alice in two browsers).
  servePage(app, options.clientDir)

  app.post<{ Body: Static<typeof TokenRequest> }>('/api/token', {
    schema: { body: TokenRequest }
  }, async (request) => {
    const { name } = request.body
    const token = signToken(name, tokenSecret, tokenTtl, { name })
    return { token, tokenType: 'Bearer', expiresIn: tokenTtl, user: { id: name, name } }
  })

  return app
}

if (isMain(import.meta.url)) {
  const tokenTtl = process.env.TOKEN_TTL === undefined ? undefined : Number(process.env.TOKEN_TTL)
  await listenUntilSignalled(await build({ logger: true, tokenTtl }), 8443)
}
