// What a reverse proxy in front of the server did to an upgrade request: the host the
// same-origin check compares the Origin with (Fastify's `request.host`, plus RFC 7239
// `Forwarded: host=`, which Fastify does not read), and the one-time warnings that say why an
// upgrade was refused when a misconfigured proxy is the likely cause.
import { isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'

/** Where the host compared with the Origin came from. */
export type HostSource = 'Host' | 'X-Forwarded-Host' | 'Forwarded'

/** A forwarded host the request carried but that was not used, and why. */
export interface IgnoredForwardedHost {
  header: 'X-Forwarded-Host' | 'Forwarded'
  value: string
  why: string
}

export interface ComparedHost {
  host: string
  from: HostSource
  ignored?: IgnoredForwardedHost
}

// Headers only a proxy (or a non-browser client) sends; a browser cannot add any of them.
const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'via']
const PROBE_HOST = 'trust-probe.fastify-ws-rooms.invalid'
const MAX_LOGGED_LENGTH = 200

function isTokenChar (code: number): boolean {
  // RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~"
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) ||
    '!#$%&\'*+-.^_`|~'.includes(String.fromCharCode(code))
}

/**
 * The elements of an RFC 7239 `Forwarded` header, first hop first, each a map of its parameters
 * (names lower-cased, quoted values unescaped); undefined when the header does not parse.
 * Empty list elements are dropped, as RFC 9110 lists allow them.
 */
export function parseForwarded (header: string): Array<Map<string, string>> | undefined {
  const elements: Array<Map<string, string>> = []
  let pairs = new Map<string, string>()
  let i = 0
  const n = header.length
  const skipWhitespace = (): void => { while (i < n && (header[i] === ' ' || header[i] === '\t')) i++ }
  const endElement = (): void => {
    if (pairs.size > 0) elements.push(pairs)
    pairs = new Map()
  }
  skipWhitespace()
  while (i < n) {
    if (header[i] === ',') { endElement(); i++; skipWhitespace(); continue }
    if (header[i] === ';') { i++; skipWhitespace(); continue }
    const nameStart = i
    while (i < n && isTokenChar(header.charCodeAt(i))) i++
    if (i === nameStart || header[i] !== '=') return undefined
    const name = header.slice(nameStart, i).toLowerCase()
    i++
    let value = ''
    if (header[i] === '"') {
      i++
      for (;;) {
        if (i >= n) return undefined
        const c = header[i]
        if (c === '"') { i++; break }
        if (c === '\\') i++
        if (i >= n) return undefined
        value += header[i]
        i++
      }
    } else {
      const valueStart = i
      while (i < n && isTokenChar(header.charCodeAt(i))) i++
      if (i === valueStart) return undefined
      value = header.slice(valueStart, i)
    }
    // RFC 7239 §4: a parameter appears at most once per element.
    if (pairs.has(name)) return undefined
    pairs.set(name, value)
    skipWhitespace()
    if (i < n && header[i] !== ';' && header[i] !== ',') return undefined
  }
  endElement()
  return elements
}

/** One header value: Node joins repeated unknown headers with ", ", but a list is possible in types. */
function headerValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * Whether Fastify's `trustProxy` trusts the peer (the immediate client) of this request.
 * Fastify keeps its trust function private; it is asked through Fastify's own `host` getter,
 * run on a stand-in whose only header is a probe X-Forwarded-Host: the getter returns that
 * header exactly when `trustProxy` trusts the socket's address. No `trustProxy`: false.
 */
export function trustsPeer (request: FastifyRequest): boolean {
  const standIn = Object.create(request, { headers: { value: { 'x-forwarded-host': PROBE_HOST } } }) as FastifyRequest
  try {
    return standIn.host === PROBE_HOST
  } catch {
    return false
  }
}

function untrustedWhy (request: FastifyRequest): string {
  return request.ips === undefined
    ? "Fastify's trustProxy is off"
    : `Fastify's trustProxy does not trust the peer ${request.socket?.remoteAddress ?? '(unknown)'}`
}

/**
 * The host the same-origin check compares the Origin with: `request.host` (the Host header, or
 * X-Forwarded-Host when `trustProxy` trusts the peer), else, when the trusted peer sent no
 * X-Forwarded-Host, the `host=` of the last element of `Forwarded` (the one the peer added).
 * Kept cheap: a request without those headers costs two property reads.
 */
export function originHost (request: FastifyRequest): string {
  const forwarded = headerValue(request.headers.forwarded)
  if (forwarded !== undefined && request.headers['x-forwarded-host'] === undefined) {
    const host = parseForwarded(forwarded)?.at(-1)?.get('host')
    if (host !== undefined && trustsPeer(request)) return host
  }
  return request.host
}

/** A header value as log lines keep it: at most MAX_LOGGED_LENGTH characters. */
function shortened (value: string): string {
  return value.length > MAX_LOGGED_LENGTH ? value.slice(0, MAX_LOGGED_LENGTH) + '…' : value
}

/** `originHost` with where it came from and what was left out, for log lines. */
export function describeOriginHost (request: FastifyRequest): ComparedHost {
  const host = originHost(request)
  const xForwardedHost = headerValue(request.headers['x-forwarded-host'])
  const forwardedHeader = headerValue(request.headers.forwarded)
  const forwarded = forwardedHeader === undefined ? undefined : shortened(forwardedHeader)
  if (xForwardedHost !== undefined) {
    if (trustsPeer(request)) return { host, from: 'X-Forwarded-Host' }
    return { host, from: 'Host', ignored: { header: 'X-Forwarded-Host', value: shortened(xForwardedHost), why: untrustedWhy(request) } }
  }
  if (forwarded !== undefined && forwardedHeader !== undefined) {
    const elements = parseForwarded(forwardedHeader)
    if (elements === undefined) {
      return {
        host,
        from: 'Host',
        ignored: { header: 'Forwarded', value: forwarded, why: 'it is not valid RFC 7239 (quote a value with a port: host="example.com:8080")' }
      }
    }
    const forwardedHost = elements.at(-1)?.get('host')
    if (forwardedHost !== undefined) {
      if (trustsPeer(request)) return { host, from: 'Forwarded' }
      return { host, from: 'Host', ignored: { header: 'Forwarded', value: forwarded, why: untrustedWhy(request) } }
    }
  }
  return { host, from: 'Host' }
}

/** A value from the request, quoted and cut short, for a log message. */
function quoted (value: string): string {
  return JSON.stringify(shortened(value))
}

function hasProxyHeaders (request: FastifyRequest): boolean {
  return PROXY_HEADERS.some((name) => request.headers[name] !== undefined)
}

/** A hostname a proxy would put into Host when it sends its upstream's address: an IP, localhost, a single label. */
function looksLikeUpstream (hostname: string): boolean {
  const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
  return isIP(bare) !== 0 || bare === 'localhost' || !bare.includes('.')
}

/**
 * Whether an Origin refused by the same-origin check differs from the compared host the way a
 * reverse proxy makes it differ: same hostname on another port (the proxy's port, or `$host`
 * dropping it); or, when the host is the Host header, proxy headers present or a Host that names
 * an upstream rather than a site. A host a trusted proxy forwarded was passed on on purpose: only
 * a lost port counts then.
 */
export function refusalLooksProxied (origin: string, compared: ComparedHost, request: FastifyRequest): boolean {
  let originUrl: URL
  let hostUrl: URL
  try {
    originUrl = new URL(origin)
    hostUrl = new URL(`${originUrl.protocol}//${compared.host}`)
  } catch {
    return compared.from === 'Host' && hasProxyHeaders(request)
  }
  if (originUrl.hostname === hostUrl.hostname) return originUrl.port !== hostUrl.port
  return compared.from === 'Host' && (hasProxyHeaders(request) || looksLikeUpstream(hostUrl.hostname))
}

/**
 * The once-only warnings of one plugin instance: each kind is logged at `warn` the first time
 * and never again by this instance (later same-origin refusals are logged at info).
 */
export class ProxyHints {
  #warnedOrigin = false
  #warnedForwardedFor = false

  /** Log a refusal by the same-origin default: a warning with the fixes the first time it looks proxy-made, else info. */
  sameOriginRefused (request: FastifyRequest): void {
    const origin = request.headers.origin ?? ''
    const compared = describeOriginHost(request)
    const fields: Record<string, unknown> = { origin, host: compared.host, hostFrom: compared.from }
    if (compared.ignored !== undefined) fields.ignoredForwardedHost = compared.ignored
    if (this.#warnedOrigin || !refusalLooksProxied(origin, compared, request)) {
      request.log.info(fields, 'WebSocket upgrade refused: Origin not allowed')
      return
    }
    this.#warnedOrigin = true
    const ignored = compared.ignored === undefined
      ? ''
      : ` ${compared.ignored.header} ${quoted(compared.ignored.value)} was ignored: ${compared.ignored.why}.`
    request.log.warn(fields,
      `WebSocket upgrade refused: Origin ${quoted(origin)} does not match the host ${quoted(compared.host)} it was compared with ` +
      `(from the ${compared.from} header).${ignored} If that Origin is your page's, a reverse proxy that does not pass the browser's host on ` +
      'causes this. Fix one of: forward the Host header with its port (nginx: proxy_set_header Host $http_host; $host drops the port), ' +
      "or send X-Forwarded-Host and set Fastify's trustProxy to the proxy's address, " +
      "or list the page's origin in allowedOrigins. (If it is not your page's, the refusal is right: another site's page tried to connect.) " +
      'This warning is logged once; later refusals are logged at info.')
  }

  /**
   * Warn once when an upgrade carries X-Forwarded-For or Forwarded that Fastify does not use for
   * `request.ip`: every client behind the proxy then shares the proxy's address, and so its
   * `maxConnectionsPerIp` budget.
   */
  checkForwardedFor (request: FastifyRequest, maxConnectionsPerIp: number): void {
    if (this.#warnedForwardedFor) return
    const hasForwardedFor = request.headers['x-forwarded-for'] !== undefined
    const hasForwarded = request.headers.forwarded !== undefined
    if (!hasForwardedFor && !hasForwarded) return
    const trusted = trustsPeer(request)
    if (trusted && hasForwardedFor) return
    this.#warnedForwardedFor = true
    const ip = request.ip
    const consequence = `so request.ip is the proxy's address (${ip}) for every client behind it: maxConnectionsPerIp ` +
      `(${maxConnectionsPerIp}) counts them all as one address and turns client number ${maxConnectionsPerIp + 1} away with HTTP 429.`
    const fields = { ip, header: hasForwardedFor ? 'X-Forwarded-For' : 'Forwarded', maxConnectionsPerIp }
    if (trusted) {
      request.log.warn(fields,
        'An upgrade carried Forwarded but no X-Forwarded-For; Fastify reads the client address from X-Forwarded-For only, ' +
        consequence + ' Fix: have the proxy send X-Forwarded-For (nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for), ' +
        'or change maxConnectionsPerIp (0: no limit). This warning is logged once.')
      return
    }
    request.log.warn(fields,
      `An upgrade carried ${fields.header} but ${untrustedWhy(request)}, ` + consequence +
      " Fix: set Fastify's trustProxy to the proxy's address (e.g. Fastify({ trustProxy: '127.0.0.1' })) so that request.ip is the client's, " +
      'or change maxConnectionsPerIp (0: no limit). This warning is logged once.')
  }
}
