// redisAdapter options and connection ownership, against a redis-server this test starts: bad
// options and an unreachable Redis fail `register` naming the option; `fastify.close()` closes the
// connections the adapter opened, leaves a given client open, and leaves no keys behind.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { Redis, Cluster } from 'ioredis'
import wsRooms from '../lib/index.js'
import { redisAdapter } from '../lib/adapters/redis.js'
import type { RedisAdapterOptions } from '../types/redis.js'
import { connect, reservedPort } from './helpers.js'
import { RedisServer, uniquePrefix } from './fixtures/redis-helpers.js'

const redis = await RedisServer.start()
t.teardown(async () => { await redis.stop() })

async function registerFails (t: Test, options: unknown, option: string, reason: RegExp): Promise<void> {
  const app = Fastify({ logger: false })
  app.register(wsRooms, { adapter: redisAdapter(options as RedisAdapterOptions) })
  try {
    const message = new RegExp(`invalid option "${option.replace('.', '\\.')}": .*${reason.source}`)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, `${reason.source} names ${option}`)
  } finally {
    await app.close()
  }
}

t.test('bad options fail register with an error naming the option', async (t) => {
  const given = new Redis(redis.url, { lazyConnect: true })
  t.teardown(() => given.disconnect())
  await registerFails(t, { url: 6379 }, 'redisAdapter.url', /expected a redis/)
  await registerFails(t, { url: 'not a url' }, 'redisAdapter.url', /is not a URL/)
  await registerFails(t, { url: 'http://127.0.0.1:6379' }, 'redisAdapter.url', /redis: or rediss: scheme/)
  await registerFails(t, { client: {} }, 'redisAdapter.client', /expected an ioredis Redis instance/)
  await registerFails(t, { client: given, url: redis.url }, 'redisAdapter.client', /either `client` or `url`/)
  await registerFails(t, { prefix: '' }, 'redisAdapter.prefix', /non-empty string/)
  await registerFails(t, { prefix: 'two words' }, 'redisAdapter.prefix', /without spaces/)
  await registerFails(t, { presenceTtl: 10 }, 'redisAdapter.presenceTtl', />= 200/)
  await registerFails(t, { presenceTtl: '10s' }, 'redisAdapter.presenceTtl', />= 200/)
  await registerFails(t, { urls: redis.url }, 'redisAdapter.urls', /unknown option/)
  await registerFails(t, 'redis://127.0.0.1:6379', 'redisAdapter', /expected an options object/)
  const cluster = new Cluster([{ host: '127.0.0.1', port: redis.port }], { lazyConnect: true })
  await registerFails(t, { client: cluster }, 'redisAdapter.client', /could not connect to the Redis Cluster/)
  cluster.disconnect()
  t.equal(given.status, 'wait', 'validation touched no connection')
})

t.test('a Redis that cannot be reached fails register, and nothing keeps retrying', async (t) => {
  const port = await reservedPort() // nothing listens there, and no listen(0) elsewhere can be handed it
  await registerFails(t, { url: `redis://127.0.0.1:${port}` }, 'redisAdapter.url', new RegExp(`could not connect to Redis at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
  const closed = new Redis(redis.url, { lazyConnect: true })
  await closed.connect()
  await closed.quit()
  await new Promise((resolve) => closed.status === 'end' ? resolve(null) : closed.once('end', resolve))
  await registerFails(t, { client: closed }, 'redisAdapter.client', /could not connect to Redis: the client is closed/)
  t.same(await redis.clients(), [], 'no connection left open')
})

t.test('with a url: close() closes both connections and removes the node\'s keys', async (t) => {
  const prefix = uniquePrefix('own')
  const app = Fastify({ logger: false })
  await app.register(wsRooms, { adapter: redisAdapter({ url: redis.url, prefix }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  const client = await connect(`ws://127.0.0.1:${address.port}/ws`)
  t.equal((await client.request({ type: 'join', room: 'r' })).type, 'ack')
  const names = (await redis.clients()).map((line) => /name=(\S*)/.exec(line)?.[1]).sort()
  const nodeId = (app.rooms as unknown as { nodeId: string }).nodeId
  t.same(names, [`fastify-ws-rooms-${nodeId}-pub`, `fastify-ws-rooms-${nodeId}-sub`], 'a publisher and a subscriber, named after the node')
  t.same((await redis.command('KEYS', `${prefix}:*`) as string[]).sort(), [`${prefix}:{r:r}:members`, `${prefix}:{r:r}:nodes`], 'the room\'s members and this node\'s lease there')
  client.ws.terminate()
  await app.close()
  t.same(await redis.clients(), [], 'CLIENT LIST is empty after fastify.close()')
  t.same(await redis.command('KEYS', `${prefix}:*`), [], 'no key left behind')
})

t.test('with a client: close() closes only the duplicate it made', async (t) => {
  const prefix = uniquePrefix('given')
  const given = new Redis(redis.url, { connectionName: 'mine' })
  t.teardown(() => given.disconnect())
  const adapter = redisAdapter({ client: given, prefix })
  const app = Fastify({ logger: false })
  await app.register(wsRooms, { adapter })
  t.equal((await redis.clients()).length, 2, 'the given client and one subscriber')
  await app.close()
  t.equal(given.status, 'ready', 'the given client is still open')
  t.equal(await given.ping(), 'PONG')
  const left = await redis.clients()
  t.equal(left.length, 1)
  t.match(left[0], / name=mine /, 'only the given client remains')
  t.equal(given.listenerCount('ready') + given.listenerCount('close'), 0, 'and the adapter\'s listeners are gone')

  const again = Fastify({ logger: false })
  again.register(wsRooms, { adapter })
  await t.rejects(async () => { await again.ready() }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /"adapter": this redisAdapter\(\) is already in use/ })
  await again.close()
})
