// CommonJS view of `fastify-ws-rooms/redis`: dist/cjs/redis.cjs exports `redisAdapter` itself,
// with the named exports on it. The types are the ESM declarations (./redis.d.ts), referenced.
import type * as esm from './redis.js' with { 'resolution-mode': 'import' }

declare namespace redisAdapter {
  export type RedisAdapterOptions = esm.RedisAdapterOptions
  export const redisAdapter: typeof esm.redisAdapter
}

/** `const redisAdapter = require('fastify-ws-rooms/redis')`; also `.redisAdapter`. */
declare function redisAdapter (...args: Parameters<typeof esm.redisAdapter>): ReturnType<typeof esm.redisAdapter>

export = redisAdapter
