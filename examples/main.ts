// What every example does when its file is run directly (`npx tsx examples/<name>/server.ts`):
// listen on PORT (or the example's default) and HOST, and close cleanly on SIGINT / SIGTERM.
import type { FastifyInstance } from 'fastify'
import { pathToFileURL } from 'node:url'

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain (moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href
}

export async function listenUntilSignalled (app: FastifyInstance, defaultPort: number): Promise<void> {
  const port = Number(process.env.PORT ?? defaultPort)
  const host = process.env.HOST ?? 'localhost'
  try {
    await app.listen({ port, host })
  } catch (err) {
    app.log.error(err, 'could not start')
    await app.close()
    process.exit(1)
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'shutting down')
      app.close().then(() => process.exit(0), (err: unknown) => {
        app.log.error(err, 'error while closing')
        process.exit(1)
      })
    })
  }
}
