// OpenTelemetry spans for client frames, through @opentelemetry/api (an optional peer dependency,
// imported once at register; without it nothing here runs). Like @fastify/otel's `request` span
// for an HTTP request, each handled frame is a SERVER span, named `ws_rooms <type>`; the frame's
// handling (an application handler included) runs in that span's context, so the spans the
// handler makes are its children. A frame starts a trace of its own (a connection lives for
// hours: one trace per connection would grow without end) unless it carries a W3C `traceparent`,
// which it then continues.
import type * as Otel from '@opentelemetry/api'
import type { Connection } from './connection.js'

type OtelApi = typeof Otel

let loaded: Promise<OtelApi | null> | undefined

/** @opentelemetry/api when it is installed, else null; imported once per process. */
export function loadOtelApi (): Promise<OtelApi | null> {
  loaded ??= import('@opentelemetry/api').then(
    // The module itself, whatever the build: its `default` export is a smaller object without the classes.
    (module) => (typeof (module as Partial<OtelApi>).ProxyTracerProvider === 'function' ? module : (module as unknown as { default: OtelApi }).default) as OtelApi,
    () => null
  )
  return loaded
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

export const ATTR_CONNECTION_ID = 'ws_rooms.connection_id'
export const ATTR_ROOM = 'ws_rooms.room'
export const ATTR_ERROR_CODE = 'ws_rooms.error_code'

export class FrameTracing {
  private readonly api: OtelApi
  private readonly tracer: Otel.Tracer
  /** The delegate of a tracer provider nobody registered: while it is the global one, no span is made. */
  private readonly noop: Otel.TracerProvider
  /** The span of the frame each connection is handling (one at a time per connection). */
  private readonly current = new Map<Connection, Otel.Span>()

  constructor (api: OtelApi) {
    this.api = api
    this.tracer = api.trace.getTracer('fastify-ws-rooms')
    this.noop = new api.ProxyTracerProvider().getDelegate()
  }

  /** A tracer provider is registered globally (checked per frame: it may be registered after the plugin). */
  enabled (): boolean {
    const provider = this.api.trace.getTracerProvider() as Otel.ProxyTracerProvider
    return typeof provider.getDelegate !== 'function' || provider.getDelegate() !== this.noop
  }

  run (conn: Connection, type: string, frame: Record<string, unknown>, handle: () => void | Promise<void>): void | Promise<void> {
    const { api } = this
    let parent = api.ROOT_CONTEXT
    if (typeof frame.traceparent === 'string') {
      const carrier: Record<string, string> = { traceparent: frame.traceparent }
      if (typeof frame.tracestate === 'string') carrier.tracestate = frame.tracestate
      parent = api.propagation.extract(parent, carrier)
    }
    const attributes: Otel.Attributes = { [ATTR_CONNECTION_ID]: conn.id }
    if (typeof frame.room === 'string') attributes[ATTR_ROOM] = frame.room
    const span = this.tracer.startSpan(`ws_rooms ${type}`, { kind: api.SpanKind.SERVER, attributes }, parent)
    this.current.set(conn, span)
    const end = (): void => {
      if (this.current.get(conn) === span) this.current.delete(conn)
      span.end()
    }
    let pending: void | Promise<void>
    try {
      pending = api.context.with(api.trace.setSpan(parent, span), handle)
    } catch (err) {
      this.failed(span, err)
      end()
      throw err
    }
    if (pending === undefined) {
      end()
      return
    }
    return pending.then(end, (err: unknown) => {
      this.failed(span, err)
      end()
      throw err
    })
  }

  /** The frame `conn` is handling was refused with `code` (an error frame); `err` when a handler threw. */
  refused (conn: Connection, code: string, err?: unknown): void {
    const span = this.current.get(conn)
    if (span === undefined) return
    span.setAttribute(ATTR_ERROR_CODE, code)
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: code })
    if (err instanceof Error) span.recordException(err)
  }

  private failed (span: Otel.Span, err: unknown): void {
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: (err as Error)?.message })
    if (err instanceof Error) span.recordException(err)
  }

  /** The active span's context as a W3C traceparent, to carry a publication to the other nodes; undefined outside a span. */
  traceparent (): string | undefined {
    if (!this.enabled()) return undefined
    const span = this.api.trace.getActiveSpan()
    if (span === undefined) return undefined
    const spanContext = span.spanContext()
    if (!this.api.isSpanContextValid(spanContext)) return undefined
    // Written and read here, whatever propagator the application registered: both ends are this package.
    return `00-${spanContext.traceId}-${spanContext.spanId}-${(spanContext.traceFlags & 0xff).toString(16).padStart(2, '0')}`
  }

  /**
   * A message another node published inside a span, delivered here: a CONSUMER span `ws_rooms
   * deliver` with a link to the publisher's span. A link, not a child: the publishing span is over
   * by the time the message arrives, and one publication is delivered on every node of the room.
   */
  delivery (room: string, traceparent: string, deliver: () => void): void {
    if (!this.enabled()) {
      deliver()
      return
    }
    const { api } = this
    const parts = TRACEPARENT.exec(traceparent)
    const remote: Otel.SpanContext | undefined = parts === null
      ? undefined
      : { traceId: parts[1], spanId: parts[2], traceFlags: parseInt(parts[3], 16), isRemote: true }
    const span = this.tracer.startSpan('ws_rooms deliver', {
      kind: api.SpanKind.CONSUMER,
      attributes: { [ATTR_ROOM]: room },
      links: remote !== undefined && api.isSpanContextValid(remote) ? [{ context: remote }] : []
    }, api.ROOT_CONTEXT)
    try {
      api.context.with(api.trace.setSpan(api.ROOT_CONTEXT, span), deliver)
    } finally {
      span.end()
    }
  }
}
