// Type tests for `fastify-ws-rooms/redis` (the Redis adapter), run by tstyche. Imports go through the
// package name, so they resolve via package.json "exports" like a user's would.
import { expect, test, describe } from 'tstyche'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import wsRooms, { type RoomsAdapter } from 'fastify-ws-rooms'
import { redisAdapter, type RedisAdapterOptions } from 'fastify-ws-rooms/redis'

describe('redisAdapter', () => {
  test('returns a RoomsAdapter the plugin accepts', () => {
    expect(redisAdapter()).type.toBe<RoomsAdapter>()
    expect(Fastify().register(wsRooms, { adapter: redisAdapter({ url: 'redis://127.0.0.1:6379' }) })).type.not.toRaiseError()
  })

  test('takes a client, a url, a prefix and a presence TTL', () => {
    expect(redisAdapter({ client: new Redis() })).type.not.toRaiseError()
    expect(redisAdapter({ url: 'redis://127.0.0.1:6379', prefix: 'chat', presenceTtl: 5000 })).type.not.toRaiseError()
    expect<RedisAdapterOptions['client']>().type.toBe<Redis | Cluster | undefined>()
  })

  test('takes an ioredis Cluster (sharded pub/sub)', () => {
    expect(redisAdapter({ client: new Cluster([{ host: '127.0.0.1', port: 7000 }]), prefix: 'chat' })).type.not.toRaiseError()
  })

  test('misuse does not compile', () => {
    expect(redisAdapter).type.not.toBeCallableWith({ url: 6379 })
    expect(redisAdapter).type.not.toBeCallableWith({ client: 'redis://127.0.0.1:6379' })
    expect(redisAdapter).type.not.toBeCallableWith({ prefix: 1 })
    expect(redisAdapter).type.not.toBeCallableWith({ presenceTtl: '10s' })
    expect(redisAdapter).type.not.toBeCallableWith({ urll: 'redis://127.0.0.1:6379' })
    expect(redisAdapter).type.not.toBeCallableWith('redis://127.0.0.1:6379')
  })
})
