// The Lua scripts of the Redis adapter, and how they are run: by SHA (EVALSHA), with the body sent
// only when Redis does not know the script yet (first use, or after a restart). Every script
// touches the keys of one room only (one hash tag), so each runs in one slot of a Redis Cluster.
// Times come from Redis (TIME), never from a node's clock, so nodes with skewed clocks agree on
// whose lease expired.
//
// Per room: `members` (hash: connectionId → nodeId \0 userJson), `nodes` (hash: nodeId →
// leaseExpiresAt:memberCount, the lease that makes a node's members count as alive), and for
// history rooms `meta` (hash: e → epoch, o → last offset) and `stream` (a Redis Stream of the last
// `size` messages, id `<offset>-1`, fields p payload, t time, x except).
import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'

export class LuaScript {
  readonly body: string
  readonly sha: string

  constructor (body: string) {
    this.body = PRELUDE + body
    this.sha = createHash('sha1').update(this.body).digest('hex')
  }

  async run (conn: Redis | Cluster, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await conn.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await conn.eval(this.body, keys.length, ...keys, ...args)
    }
  }
}

/** Helpers every script starts with: Redis's clock in ms, and a TTL that is only ever raised. */
const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep_alive(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
local function lease(now, ttl, count)
  return string.format('%.0f', now + ttl) .. ':' .. count
end
`

/**
 * A member joined: its entry, this node's lease in the room, both kept alive.
 * KEYS members, nodes. ARGV connectionId, entry, nodeId, ttl, count.
 */
export const ADD_MEMBER = new LuaScript(`
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], lease(now_ms(), ttl, ARGV[5]))
keep_alive(KEYS[1], ttl)
keep_alive(KEYS[2], ttl)
return 1
`)

/**
 * A presence diff: this node's count and lease (or no lease at 0 members), then the diff itself on
 * the room's channel, in one step so a node that reads the count has the diff on its way.
 * KEYS nodes. ARGV nodeId, ttl, count, publish command (PUBLISH / SPUBLISH), channel, message.
 */
export const PRESENCE_DIFF = new LuaScript(`
local ttl = tonumber(ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], lease(now_ms(), ttl, ARGV[3]))
  keep_alive(KEYS[1], ttl)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call(ARGV[4], ARGV[5], ARGV[6])
return 1
`)

/**
 * The heartbeat of one room: renew this node's lease and keep the room's keys alive (a history
 * room's meta too, so a quiet room with members keeps its epoch). Returns
 * { whether ARGV[4] (one of this node's connections there) is still listed, dead nodes, live
 * nodes and counts }: a missing entry means the hash expired or was deleted (write it again).
 * KEYS members, nodes[, meta]. ARGV nodeId, ttl, count, sample connectionId, meta ttl.
 */
export const ROOM_BEAT = new LuaScript(`
local now = now_ms()
local ttl = tonumber(ARGV[2])
local present = redis.call('HEXISTS', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], lease(now, ttl, ARGV[3]))
keep_alive(KEYS[1], ttl)
keep_alive(KEYS[2], ttl)
if #KEYS >= 3 and redis.call('EXISTS', KEYS[3]) == 1 then keep_alive(KEYS[3], tonumber(ARGV[5])) end
local leases = redis.call('HGETALL', KEYS[2])
local dead = {}
local live = {}
for i = 1, #leases, 2 do
  local value = leases[i + 1]
  local cut = string.find(value, ':', 1, true)
  if cut == nil or tonumber(string.sub(value, 1, cut - 1)) < now then
    dead[#dead + 1] = leases[i]
  elseif leases[i] ~= ARGV[1] then
    live[#live + 1] = leases[i]
    live[#live + 1] = string.sub(value, cut + 1)
  end
end
return { present, dead, live }
`)

/**
 * Forget a node whose lease expired (it died without cleaning up): its entries and its lease,
 * unless it came back meanwhile. Its members are announced as left on the room's channel (a `g`
 * publication per page of them: `g` nodeId \0 0 \0 \0 diff JSON, see redis-codec.ts), in the same
 * step as the purge, so however many live nodes find the lease expired, the room hears it once.
 * A tombstone (field \0gone\0 nodeId, never a connection id) tells the node, should it come back
 * (a partition, a stalled process), that its members were announced as left (WRITE_MEMBERS).
 * KEYS members, nodes. ARGV nodeId, publish command (PUBLISH / SPUBLISH), channel.
 * Returns how many members were purged.
 */
export const PURGE_DEAD_NODE = new LuaScript(`
local value = redis.call('HGET', KEYS[2], ARGV[1])
if value then
  local cut = string.find(value, ':', 1, true)
  if cut ~= nil and tonumber(string.sub(value, 1, cut - 1)) >= now_ms() then return 0 end
end
local prefix = ARGV[1] .. '\\0'
local purged = 0
local page_of_leaves = {}
local function announce()
  if #page_of_leaves == 0 then return end
  local body = '{"count":0,"changes":[' .. table.concat(page_of_leaves, ',') .. ']}'
  redis.call(ARGV[2], ARGV[3], 'g' .. ARGV[1] .. '\\0' .. '0' .. '\\0\\0' .. body)
  page_of_leaves = {}
end
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 500)
  cursor = page[1]
  local kv = page[2]
  for i = 1, #kv, 2 do
    if string.sub(kv[i + 1], 1, #prefix) == prefix then
      redis.call('HDEL', KEYS[1], kv[i])
      purged = purged + 1
      page_of_leaves[#page_of_leaves + 1] = '[0,' .. cjson.encode(kv[i]) .. ',' .. string.sub(kv[i + 1], #prefix + 1) .. ']'
      if #page_of_leaves >= 500 then announce() end
    end
  end
until cursor == '0'
announce()
redis.call('HDEL', KEYS[2], ARGV[1])
if purged > 0 then redis.call('HSET', KEYS[1], '\\0gone\\0' .. ARGV[1], string.format('%.0f', now_ms())) end
return purged
`)

/**
 * Delete every entry of this node from a room (before writing what it has now, after an outage in
 * which some of its leaves could not be written). KEYS members. ARGV the entry prefix (nodeId \\0).
 */
export const PURGE_OWN = new LuaScript(`
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 500)
  cursor = page[1]
  local kv = page[2]
  for i = 1, #kv, 2 do
    if string.sub(kv[i + 1], 1, #ARGV[1]) == ARGV[1] then redis.call('HDEL', KEYS[1], kv[i]) end
  end
until cursor == '0'
return 0
`)

/**
 * Write this node's members of a room again, with its lease (after an outage or a lost hash).
 * KEYS members, nodes. ARGV nodeId, ttl, count, then connectionId, entry pairs.
 * Returns 1 when the node had been purged as dead (its members were announced as left), else 0.
 */
export const WRITE_MEMBERS = new LuaScript(`
local ttl = tonumber(ARGV[2])
local purged = redis.call('HDEL', KEYS[1], '\\0gone\\0' .. ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], ARGV[1], lease(now_ms(), ttl, ARGV[3]))
keep_alive(KEYS[1], ttl)
keep_alive(KEYS[2], ttl)
return purged
`)

/**
 * Up to ARGV[1] members of a room on other live nodes (a live node holds a lease not yet expired),
 * scanned, never read whole: bounded by the limit, not by the room. KEYS members, nodes.
 * ARGV limit, the asking node (its own members are answered from memory).
 */
export const MEMBERS = new LuaScript(`
local limit = tonumber(ARGV[1])
local out = {}
if limit <= 0 then return out end
local now = now_ms()
local live = {}
local leases = redis.call('HGETALL', KEYS[2])
for i = 1, #leases, 2 do
  local cut = string.find(leases[i + 1], ':', 1, true)
  if cut ~= nil and tonumber(string.sub(leases[i + 1], 1, cut - 1)) >= now then live[leases[i]] = true end
end
local found = 0
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 500)
  cursor = page[1]
  local kv = page[2]
  for i = 1, #kv, 2 do
    if found < limit then
      local value = kv[i + 1]
      local cut = string.find(value, '\\0', 1, true)
      local node = cut and string.sub(value, 1, cut - 1) or ''
      if node ~= ARGV[2] and live[node] then
        out[#out + 1] = kv[i]
        out[#out + 1] = value
        found = found + 1
      end
    end
  end
until cursor == '0' or found >= limit
return out
`)

/** The members on other live nodes, from their leases' counts. KEYS nodes. ARGV the asking node. */
export const OTHERS_COUNT = new LuaScript(`
local now = now_ms()
local total = 0
local leases = redis.call('HGETALL', KEYS[1])
for i = 1, #leases, 2 do
  local cut = string.find(leases[i + 1], ':', 1, true)
  if leases[i] ~= ARGV[1] and cut ~= nil and tonumber(string.sub(leases[i + 1], 1, cut - 1)) >= now then
    total = total + tonumber(string.sub(leases[i + 1], cut + 1))
  end
end
return total
`)

/** The live nodes' counts in a room (for a node that just subscribed). KEYS nodes. ARGV the asking node. */
export const LIVE_COUNTS = new LuaScript(`
local now = now_ms()
local out = {}
local leases = redis.call('HGETALL', KEYS[1])
for i = 1, #leases, 2 do
  local cut = string.find(leases[i + 1], ':', 1, true)
  if leases[i] ~= ARGV[1] and cut ~= nil and tonumber(string.sub(leases[i + 1], 1, cut - 1)) >= now then
    out[#out + 1] = leases[i]
    out[#out + 1] = string.sub(leases[i + 1], cut + 1)
  end
end
return out
`)

/**
 * The messages one node sent a history room within one turn of its event loop (one or more): n
 * consecutive offsets taken at once, one XADD per message (the stream trimmed to the size), the
 * TTLs refreshed, and published on the room's channel with the epoch and offsets, all in one step,
 * so every node receives the room's messages in offset order. A room whose meta is gone (expired,
 * or Redis lost it) starts a new epoch with an empty stream. Each entry keeps its publication's
 * id, so that a publisher whose reply was lost can learn the outcome (FIND_PUBLISHED). Several
 * messages go out as one publication (`b` epoch \0 first offset \0 \0 except \0 payload \0
 * except \0 payload ..., see redis-codec.ts), one message as an `h` publication, as before batches.
 * KEYS meta, stream. ARGV size, ttl, epoch if new, publish command, channel, n, then per message
 * head, sep, except, id. Returns { epoch, first offset }.
 */
export const PUBLISH_HISTORY_BATCH = new LuaScript(`
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
local n = tonumber(ARGV[6])
local first = redis.call('HINCRBY', KEYS[1], 'o', n) - n + 1
local now = string.format('%.0f', now_ms())
local fields = {}
for i = 0, n - 1 do
  local at = 6 + i * 4
  local offset = first + i
  local payload = ARGV[at + 1] .. ARGV[at + 2] .. '"offset":' .. offset .. '}'
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], offset .. '-1', 'p', payload, 't', now, 'x', ARGV[at + 3], 'i', ARGV[at + 4])
  fields[#fields + 1] = ARGV[at + 3]
  fields[#fields + 1] = payload
end
local ttl = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
keep_alive(KEYS[1], ttl)
if n == 1 then
  redis.call(ARGV[4], ARGV[5], 'h' .. epoch .. '\\0' .. first .. '\\0' .. fields[1] .. '\\0' .. fields[2])
else
  redis.call(ARGV[4], ARGV[5], 'b' .. epoch .. '\\0' .. first .. '\\0\\0' .. table.concat(fields, '\\0'))
end
return { epoch, first }
`)

/**
 * A history room's epoch and last offset, whether every message after ARGV[1] is still kept, and
 * up to ARGV[2] of them (-1: all kept). Creates the room's epoch when it has none yet.
 * KEYS meta, stream. ARGV after, limit, ttl, epoch if new.
 * Returns { epoch, last, complete, offset1, payload1, except1, ... }.
 */
export const READ_HISTORY = new LuaScript(`
local epoch = redis.call('HGET', KEYS[1], 'e')
local last = 0
local ttl = tonumber(ARGV[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  keep_alive(KEYS[1], ttl)
else
  last = tonumber(redis.call('HGET', KEYS[1], 'o'))
end
local after = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local out = { epoch, last, 0 }
if after >= last then
  out[3] = 1
  return out
end
local oldest = now_ms() - ttl
local range
if limit >= 0 then
  range = redis.call('XRANGE', KEYS[2], '(' .. after .. '-1', '+', 'COUNT', math.max(limit, 1))
else
  range = redis.call('XRANGE', KEYS[2], '(' .. after .. '-1', '+')
end
local kept = 0
for _, entry in ipairs(range) do
  local id = entry[1]
  local offset = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
  local fields = {}
  for j = 1, #entry[2], 2 do fields[entry[2][j]] = entry[2][j + 1] end
  if tonumber(fields.t) >= oldest then
    if kept == 0 and offset == after + 1 then out[3] = 1 end
    kept = kept + 1
    if limit < 0 or kept <= limit then
      out[#out + 1] = offset
      out[#out + 1] = fields.p
      out[#out + 1] = fields.x
    end
  end
end
return out
`)

/**
 * Whether a publication (its id) is in a history room's stream: the outcome of a
 * PUBLISH_HISTORY_BATCH whose reply was lost. Read-only; reads newest first, in pages, and stops at entries older than
 * ARGV[3] ms (the publication was sent more recently than that), so a long stream costs little.
 * KEYS meta, stream. ARGV id, size, window.
 * Returns { epoch ('' when the room has none), offset (0 when not found), trimmed (1 when not
 * found in a full stream that holds nothing older than the window: it may have been trimmed away) }.
 */
export const FIND_PUBLISHED = new LuaScript(`
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then return { '', 0, 0 } end
local trimmed = 0
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then trimmed = 1 end
local oldest = now_ms() - tonumber(ARGV[3])
local before = '+'
while true do
  local page = redis.call('XREVRANGE', KEYS[2], before, '-', 'COUNT', 100)
  if #page == 0 then break end
  for _, entry in ipairs(page) do
    local fields = {}
    for j = 1, #entry[2], 2 do fields[entry[2][j]] = entry[2][j + 1] end
    local id = entry[1]
    local offset = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
    if fields.i == ARGV[1] then return { epoch, offset, trimmed } end
    -- An entry from before the publication was sent: it is not further back, nor trimmed away.
    if tonumber(fields.t) < oldest then return { epoch, 0, 0 } end
    before = '(' .. id
  end
end
return { epoch, 0, trimmed }
`)
