// @opentelemetry/api installed without a provider, against the api not installed: what the check
// for a provider costs per frame. 100 rooms × 10 (the most frames per delivery): see 72-metrics.mjs.
import { observabilityScenario, shapes } from './72-metrics.mjs'

export default observabilityScenario('tracing-noop', '@opentelemetry/api installed, no provider', shapes.manyRooms, {}, { BENCH_HIDE_OTEL: '1' })
