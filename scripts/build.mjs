// Dual build: tsc emits ESM into dist/esm and CommonJS into dist/cjs. The .cjs entry
// points make `require('fastify-ws-rooms')` return the plugin itself (callable), with
// `.default` and the named exports hanging off it, the way Fastify's own plugins do.
// Source maps carry their sources (`--inlineSources`): lib/ is not in the package, so a stack
// trace mapped to lib/client/client.ts must find that file's text in the map itself.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')

rmSync('dist', { recursive: true, force: true })
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--inlineSources'], { stdio: 'inherit' })
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.cjs.json', '--inlineSources'], { stdio: 'inherit' })
mkdirSync('dist/cjs', { recursive: true })
writeFileSync('dist/esm/package.json', '{ "type": "module" }\n')
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n')

const entries = {
  'index.cjs': ['./index.js', 'default'],
  'redis.cjs': ['./adapters/redis.js', 'redisAdapter'],
  'client.cjs': ['./client/index.js', 'connect']
}
for (const [file, [target, callable]] of Object.entries(entries)) {
  writeFileSync(`dist/cjs/${file}`, `'use strict'
const mod = require('${target}')
module.exports = Object.assign(mod.${callable}, mod)
`)
}

// A map without its sources would point users at files they do not have: refuse to ship one.
for (const file of readdirSync('dist', { recursive: true })) {
  if (!file.endsWith('.map')) continue
  const map = JSON.parse(readFileSync(`dist/${file}`, 'utf8'))
  if (!Array.isArray(map.sourcesContent) || map.sourcesContent.length !== map.sources.length || map.sourcesContent.some((text) => typeof text !== 'string')) {
    throw new Error(`dist/${file}: the source map does not carry the text of its sources`)
  }
}
