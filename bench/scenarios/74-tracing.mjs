// Tracing: a registered provider against none (every frame a span), 1 room × 1000: see 72-metrics.mjs.
import { observabilityScenario, shapes } from './72-metrics.mjs'

export default observabilityScenario('tracing', 'a tracer provider registered', shapes.oneRoom, { BENCH_TRACING: '1' })
