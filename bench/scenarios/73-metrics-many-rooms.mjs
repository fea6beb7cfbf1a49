// Metrics on against off in 100 rooms × 10: see 72-metrics.mjs.
import { observabilityScenario, shapes } from './72-metrics.mjs'

export default observabilityScenario('metrics-many-rooms', 'metrics on', shapes.manyRooms, { BENCH_METRICS: '1' })
