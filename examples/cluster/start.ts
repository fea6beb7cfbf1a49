// The chat example on several nodes sharing one Redis: one command starts them all.
//
//   npx tsx examples/cluster/start.ts          (Redis at redis://127.0.0.1:6379)
//   open http://localhost:3001/ in one tab and http://localhost:3002/ in another: a message sent
//   on one node reaches the members connected to the others.
//
// Env: PORTS (default 3001,3002,3003; 0 picks free ports), HOST, REDIS_URL, ROOMS_PREFIX,
// CHAT_DB (see node.ts). Ctrl-C stops every node.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'

const NODE_SCRIPT = fileURLToPath(new URL('./node.ts', import.meta.url))

export interface ClusterOptions {
  /** One node per port; 0 picks a free one. Default [3001, 3002, 3003]. */
  ports?: number[]
  /** Extra environment for every node (REDIS_URL, ROOMS_PREFIX, CHAT_DB, HOST, LOG_LEVEL). */
  env?: Record<string, string>
  /** Where the nodes' stdout and stderr go. Default: this process's, line by line with a `[node N]` tag. */
  stdio?: 'tagged' | 'ignore'
}

export interface Cluster {
  /** http://HOST:PORT of each node, in order. */
  urls: string[]
  /** Stop every node (SIGTERM: a clean fastify.close()); resolves when all exited. */
  stop: () => Promise<void>
}

function tagLines (child: ChildProcess, tag: string): void {
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]] as const) {
    let rest = ''
    stream?.setEncoding('utf8')
    stream?.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) out.write(`${tag} ${line}\n`)
    })
  }
}

export async function startCluster (options: ClusterOptions = {}): Promise<Cluster> {
  const ports = options.ports ?? [3001, 3002, 3003]
  const host = options.env?.HOST ?? process.env.HOST ?? 'localhost'
  const children: ChildProcess[] = []
  const exits: Array<Promise<void>> = []
  async function stop (): Promise<void> {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await Promise.all(exits)
  }
  try {
    const listening = ports.map(async (port, i) => {
      const child = fork(NODE_SCRIPT, [], {
        // The parent's TypeScript loader when it has one (tap's, so coverage maps line up), else tsx.
        execArgv: process.execArgv.length > 0 ? process.execArgv : ['--import', 'tsx'],
        env: { ...process.env, ...options.env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc']
      })
      children.push(child)
      exits.push(new Promise((resolve) => child.once('exit', () => resolve())))
      if (options.stdio !== 'ignore') tagLines(child, `[node ${i + 1}]`)
      else { child.stdout?.resume(); child.stderr?.resume() }
      return await new Promise<number>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`node ${i + 1} exited with code ${code} before listening`)))
        child.on('message', (m: { type?: string, port?: number }) => { if (m.type === 'listening' && typeof m.port === 'number') resolve(m.port) })
      })
    })
    const bound = await Promise.all(listening)
    return { urls: bound.map((port) => `http://${host}:${port}`), stop }
  } catch (err) {
    await stop()
    throw err
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ports = (process.env.PORTS ?? '3001,3002,3003').split(',').map((p) => Number(p.trim()))
  let cluster: Cluster
  try {
    cluster = await startCluster({ ports })
  } catch (err) {
    process.stderr.write(`could not start the cluster: ${(err as Error).message}\n` +
      `(is Redis running at ${process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'}? e.g. \`redis-server --save '' --appendonly no\`)\n`)
    process.exit(1)
  }
  process.stdout.write(`\n${cluster.urls.length} nodes sharing Redis; open each in its own tab and chat across them:\n` +
    cluster.urls.map((url) => `  ${url}/\n`).join('') + '\n')
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { cluster.stop().then(() => process.exit(0), () => process.exit(1)) })
  }
}
