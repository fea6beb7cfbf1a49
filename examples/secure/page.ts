// The secure example's page: /page (public/index.html and page.js) and the browser client it
// imports under /client/. Only those files are served: names are checked against a fixed list
// and a plain file-name pattern, never joined to a path from the URL as they come.
import type { FastifyInstance, FastifyReply } from 'fastify'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const publicDir = fileURLToPath(new URL('public/', import.meta.url))
/** The built browser client (`npm run build`). */
export const DEFAULT_CLIENT_DIR = fileURLToPath(new URL('../../dist/esm/client/', import.meta.url))
const CLIENT_FILE = /^[a-z][a-z-]*\.js$/
// Scripts from this origin only; the socket goes to this origin too ('self' covers wss: here).
const CSP = "default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'none'"

async function send (reply: FastifyReply, file: string, type: string): Promise<FastifyReply> {
  if (!existsSync(file)) {
    reply.callNotFound()
    return reply
  }
  return await reply.type(type).header('content-security-policy', CSP).header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-cache').send(await readFile(file))
}

export function servePage (app: FastifyInstance, clientDir: string = DEFAULT_CLIENT_DIR): void {
  app.get('/page', async (_request, reply) => await send(reply, join(publicDir, 'index.html'), 'text/html; charset=utf-8'))
  // No icon: an empty answer, rather than a 404 in every browser's console.
  app.get('/favicon.ico', async (_request, reply) => await reply.code(204).send())
  app.get('/page.js', async (_request, reply) => await send(reply, join(publicDir, 'page.js'), 'text/javascript; charset=utf-8'))
  app.get<{ Params: { file: string } }>('/client/:file', async (request, reply) => {
    const { file } = request.params
    if (!CLIENT_FILE.test(file)) {
      reply.callNotFound()
      return reply
    }
    return await send(reply, join(clientDir, file), 'text/javascript; charset=utf-8')
  })
}
