"""The Lua scripts the shared state runs in Redis: each is one round trip, and atomic.

Every key starts with the prefix given as ARGV[1] (one Redis database may hold several emulators' states).

A capped collection (the journal, the stored responses, the threads) is a list of ids in arrival order, a hash of
id → JSON, a hash of id → size and a byte count: a put evicts the oldest until both the count and the bytes are
within their caps, as the in-memory journal and stores do.
"""

from __future__ import annotations

CAPPED = """
local function capped_put(base, id, value, max_items, max_bytes)
  local size = string.len(value)
  local old = redis.call('HGET', base .. 'sizes', id)
  if old then
    redis.call('DECRBY', base .. 'bytes', old)
  else
    redis.call('RPUSH', base .. 'ids', id)
  end
  redis.call('HSET', base .. 'items', id, value)
  redis.call('HSET', base .. 'sizes', id, size)
  local bytes = redis.call('INCRBY', base .. 'bytes', size)
  local n = redis.call('LLEN', base .. 'ids')
  while n > 1 and (n > max_items or bytes > max_bytes) do
    local gone = redis.call('LPOP', base .. 'ids')
    local gone_size = tonumber(redis.call('HGET', base .. 'sizes', gone) or '0')
    redis.call('HDEL', base .. 'items', gone)
    redis.call('HDEL', base .. 'sizes', gone)
    bytes = redis.call('DECRBY', base .. 'bytes', gone_size)
    n = n - 1
  end
end
"""

# ARGV: prefix, known version, test id, test-state ttl (s), sequence key ('' for none), journal entry JSON
# ('' for none), journal max entries, journal max bytes.
# → {1, version, queued failure or '', sequence count or -1, journal id or 0}, or {0, version} when the caller's
# scenarios and faults are older than the shared ones (nothing is changed then: it syncs and asks again).
BEGIN = (
    CAPPED
    + """
local p = ARGV[1]
local version = redis.call('GET', p .. 'v') or '0'
if version ~= ARGV[2] then return {0, version} end
local tid = ARGV[3]
local ttl = tonumber(ARGV[4])
local failure = redis.call('LPOP', p .. 'fail:' .. tid)
local count = -1
if not failure and ARGV[5] ~= '' then
  local key = p .. 'seq:' .. tid
  count = redis.call('HINCRBY', key, ARGV[5], 1) - 1
  if tid ~= '' and ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
local id = 0
if ARGV[6] ~= '' then
  id = redis.call('INCR', p .. 'j:id')
  capped_put(p .. 'j:', tostring(id), string.gsub(ARGV[6], '"id": 0,', '"id": ' .. id .. ',', 1), tonumber(ARGV[7]), tonumber(ARGV[8]))
end
return {1, version, failure or '', count, id}
"""
)

# ARGV: prefix, max entries, max bytes, then (id, entry JSON) pairs: id 0 is a new entry (it gets an id here);
# an entry already evicted is not put back. → the ids.
SETTLE = (
    CAPPED
    + """
local p = ARGV[1]
local base = p .. 'j:'
local ids = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local value = ARGV[i + 1]
  if id == '0' then
    id = tostring(redis.call('INCR', p .. 'j:id'))
    value = string.gsub(value, '"id": 0,', '"id": ' .. id .. ',', 1)
    capped_put(base, id, value, tonumber(ARGV[2]), tonumber(ARGV[3]))
  elseif redis.call('HEXISTS', base .. 'items', id) == 1 then
    capped_put(base, id, value, tonumber(ARGV[2]), tonumber(ARGV[3]))
  end
  table.insert(ids, id)
end
return ids
"""
)

# ARGV: base (prefix .. collection), id, JSON, max items, max bytes.
PUT = (
    CAPPED
    + """
capped_put(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
"""
)

# ARGV: base, test id ('' for every entry). Drops the entries of one test id (their JSON's "test_id"), or all.
CLEAR = """
local base = ARGV[1]
if ARGV[2] == '' then
  redis.call('DEL', base .. 'ids', base .. 'items', base .. 'sizes', base .. 'bytes')
  return 1
end
local kept = {}
local bytes = 0
for _, id in ipairs(redis.call('LRANGE', base .. 'ids', 0, -1)) do
  local value = redis.call('HGET', base .. 'items', id)
  if value and cjson.decode(value)['test_id'] == ARGV[2] then
    redis.call('HDEL', base .. 'items', id)
    redis.call('HDEL', base .. 'sizes', id)
  elseif value then
    table.insert(kept, id)
    bytes = bytes + tonumber(redis.call('HGET', base .. 'sizes', id) or '0')
  end
end
redis.call('DEL', base .. 'ids')
for i = 1, #kept, 5000 do
  redis.call('RPUSH', base .. 'ids', unpack(kept, i, math.min(i + 4999, #kept)))
end
redis.call('SET', base .. 'bytes', bytes)
return 1
"""

# ARGV: base, newest id, how many at most. Walks a chain of stored turns back along their "previous" field.
# → the JSON of each turn found, newest first.
CHAIN = """
local out = {}
local id = ARGV[2]
for _ = 1, tonumber(ARGV[3]) do
  local value = redis.call('HGET', ARGV[1] .. 'items', id)
  if not value then break end
  table.insert(out, value)
  local previous = cjson.decode(value)['previous']
  if type(previous) ~= 'string' then break end
  id = previous
end
return out
"""

# ARGV: prefix, what changed (a scope: 's', 't:<test id>', 'f', 'r:<test id>' or 'r:'), changes kept.
# Bumps the version every worker compares with; → the new version.
CHANGED = """
local p = ARGV[1]
local version = redis.call('INCR', p .. 'v')
redis.call('RPUSH', p .. 'chg', version .. ' ' .. ARGV[2])
redis.call('LTRIM', p .. 'chg', -tonumber(ARGV[3]), -1)
return version
"""

# Token buckets for requests and tokens and a concurrency count, as emulator/ratelimit.py keeps them in memory, on
# Redis's clock. ARGV: prefix, bucket key, what ('admit', 'charge', 'release'), window (s), request limit (0: none),
# token limit (0: none), tokens (the prompt's to admit, the completion's to charge), concurrency limit (0: none).
# → {refusal reason or '', request level, token level, now} (levels as text, '' where there is no such bucket).
TAKE = """
local key = ARGV[1] .. 'rl:' .. ARGV[2]
local what, window = ARGV[3], tonumber(ARGV[4])
local concurrency = tonumber(ARGV[8])
if what == 'release' then
  if tonumber(redis.call('HINCRBY', key, 'open', -1)) < 0 then redis.call('HSET', key, 'open', 0) end
  return {'', '', '', ''}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local names = {'requests', 'tokens'}
local limits = {tonumber(ARGV[5]), tonumber(ARGV[6])}
local levels = {}
for i, name in ipairs(names) do
  local limit = limits[i]
  if limit > 0 then
    local state = redis.call('HMGET', key, name, name .. ':at')
    local level = tonumber(state[1] or limit)
    local at = tonumber(state[2] or now)
    levels[i] = math.min(limit, level + math.max(0, now - at) * limit / window)
  end
end
local tokens = tonumber(ARGV[7])
local reason = ''
if what == 'admit' then
  if concurrency > 0 and tonumber(redis.call('HGET', key, 'open') or '0') >= concurrency then
    reason = 'concurrency'
  elseif levels[1] and levels[1] < 1 then
    reason = 'requests'
  elseif levels[2] and levels[2] < math.min(tokens, limits[2]) then
    reason = 'tokens'
  end
  if reason == '' then
    if levels[1] then levels[1] = levels[1] - 1 end
    if levels[2] then levels[2] = levels[2] - tokens end
    if concurrency > 0 then redis.call('HINCRBY', key, 'open', 1) end
  end
elseif levels[2] then
  levels[2] = levels[2] - tokens
end
for i, name in ipairs(names) do
  if levels[i] then redis.call('HSET', key, name, tostring(levels[i]), name .. ':at', tostring(now)) end
end
redis.call('EXPIRE', key, math.ceil(window) + 3600)
return {reason, levels[1] and tostring(levels[1]) or '', levels[2] and tostring(levels[2]) or '', tostring(now)}
"""

# Fault counters, per test id and fault, and the seconds since the shared state started counting (a fault's
# `window`), on Redis's clock. ARGV: prefix, test id, test-state ttl (s), then the ids of the faults that apply.
# → {elapsed (s, as text), then each fault's count before this call}
FAULTS = """
local p = ARGV[1]
local key = p .. 'fc:' .. ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
redis.call('SET', p .. 'fstart', tostring(now), 'NX')
local out = {tostring(now - tonumber(redis.call('GET', p .. 'fstart')))}
if redis.call('HLEN', key) > 4096 then redis.call('DEL', key) end
for i = 4, #ARGV do
  table.insert(out, redis.call('HINCRBY', key, ARGV[i], 1) - 1)
end
if ARGV[2] ~= '' and tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', key, ARGV[3]) end
return out
"""
