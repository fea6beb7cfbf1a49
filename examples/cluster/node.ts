// One node of the cluster example: the chat example (examples/chat) with the Redis adapter, so
// its rooms, `sendToUser` and `members` span every node sharing the Redis and the prefix.
// Started by start.ts (one process per node); runs alone too:
//
//   PORT=3001 npx tsx examples/cluster/node.ts
//
// Env: PORT (0 picks a free one), HOST (default localhost), REDIS_URL (default
// redis://127.0.0.1:6379), ROOMS_PREFIX (default chat-cluster), CHAT_DB (default the chat example's
// examples/chat/chat.db, shared by the nodes: SQLite in WAL mode takes several processes).
import { fileURLToPath } from 'node:url'
import { resolve } from 'node:path'
import { build } from '../chat/server.js'
import { redisAdapter } from '../../lib/adapters/redis.js'

const here = fileURLToPath(new URL('.', import.meta.url))

const app = await build({
  logger: process.env.LOG_LEVEL === 'silent' ? false : { level: process.env.LOG_LEVEL ?? 'info' },
  dbPath: process.env.CHAT_DB ?? resolve(here, '../chat/chat.db'),
  rooms: {
    adapter: redisAdapter({
      url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      prefix: process.env.ROOMS_PREFIX ?? 'chat-cluster'
    })
  }
})
// Which node answered, for the curious (and for the test).
app.get('/api/node', async () => ({ nodeId: (app.rooms as unknown as { nodeId: string }).nodeId, pid: process.pid }))

try {
  await app.listen({ port: Number(process.env.PORT ?? 3001), host: process.env.HOST ?? 'localhost' })
} catch (err) {
  app.log.error(err, 'could not start')
  await app.close()
  process.exit(1)
}
const address = app.server.address()
const port = typeof address === 'object' && address !== null ? address.port : 0
process.send?.({ type: 'listening', port })

let closing = false
function shutdown (): void {
  if (closing) return
  closing = true
  app.close().then(() => process.exit(0), (err: unknown) => {
    app.log.error(err, 'error while closing')
    process.exit(1)
  })
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)
process.once('disconnect', shutdown) // started by start.ts, which went away
