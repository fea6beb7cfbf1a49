// The Lua scripts of the Redis adapter's presence, and how they are run: by SHA (EVALSHA), with
// the body sent only when Redis does not know the script yet (first use, or after a restart).
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

export class LuaScript {
  readonly body: string
  readonly sha: string

  constructor (body: string) {
    this.body = body
    this.sha = createHash('sha1').update(body).digest('hex')
  }

  async run (conn: Redis, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await conn.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await conn.eval(this.body, keys.length, ...keys, ...args)
    }
  }
}

/**
 * Members of a room on other nodes whose heartbeat key still exists; the others are deleted.
 * KEYS[1] presence hash, ARGV[1] node key prefix, ARGV[2] the asking node (answered from memory).
 */
export const MEMBERS = new LuaScript(`
local entries = redis.call('HGETALL', KEYS[1])
local alive = {}
local live = {}
for i = 1, #entries, 2 do
  local value = entries[i + 1]
  local cut = string.find(value, '\\0', 1, true)
  local node = cut and string.sub(value, 1, cut - 1) or ''
  if node ~= ARGV[2] then
    local ok = alive[node]
    if ok == nil then
      ok = redis.call('EXISTS', ARGV[1] .. node) == 1
      alive[node] = ok
    end
    if ok then
      live[#live + 1] = entries[i]
      live[#live + 1] = value
    else
      redis.call('HDEL', KEYS[1], entries[i])
    end
  end
end
return live
`)

/**
 * Delete every entry of one node from a room's presence hash (before re-registering what it has
 * now, after an outage in which some of its leaves could not be written).
 * KEYS[1] presence hash, ARGV[1] the node's entry prefix (`nodeId \0`).
 */
export const PURGE = new LuaScript(`
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  if string.sub(entries[i + 1], 1, #ARGV[1]) == ARGV[1] then redis.call('HDEL', KEYS[1], entries[i]) end
end
return 0
`)

/**
 * Keep a room's presence hash alive for at least ARGV[1] ms, never shortening it: nodes may run
 * with different presenceTtl, and one with a short TTL must not make the others' entries expire.
 * Returns 0, touching nothing, when the node's entry ARGV[2] (any one of its members there) is
 * missing: the hash expired or was deleted, and the node must write its entries again.
 * KEYS[1] presence hash, ARGV[1] ttl in ms, ARGV[2] a connection id of the node in that room.
 */
export const KEEP_ALIVE = new LuaScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
`)
