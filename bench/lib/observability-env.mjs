// What BENCH_HIDE_OTEL and BENCH_TRACING ask of a bench process, before the plugin is loaded:
// @opentelemetry/api impossible to import (as when it is not installed), or a tracer provider
// registered globally (every span sampled, batched to an exporter that drops them).
import { register } from 'node:module'

export async function observabilityFromEnv () {
  if (process.env.BENCH_HIDE_OTEL === '1') {
    register('data:text/javascript,' + encodeURIComponent(`export async function resolve (specifier, context, next) {
      if (specifier === '@opentelemetry/api') throw Object.assign(new Error('hidden'), { code: 'ERR_MODULE_NOT_FOUND' })
      return next(specifier, context)
    }`))
  }
  if (process.env.BENCH_TRACING === '1') {
    const { context, propagation, trace } = await import('@opentelemetry/api')
    const { AsyncHooksContextManager } = await import('@opentelemetry/context-async-hooks')
    const { W3CTraceContextPropagator } = await import('@opentelemetry/core')
    const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
    const dropped = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} }
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropped)] }))
    context.setGlobalContextManager(new AsyncHooksContextManager().enable())
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  }
}
