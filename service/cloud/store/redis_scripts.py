"""The Lua scripts of the Redis store (`redis.py`): every multi-key change is one script, so no other client sees
half of it. Kept apart so the store's Python reads as its operations."""

CREATE_DEVICE = """#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""

PUT_VERSION = """#!lua
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
local seq = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], seq, ARGV[2])
return false
"""

CAS_ROLLOUT = """#!lua
local cur = redis.call('GET', KEYS[1])
local gen = 0
if cur then gen = tonumber(cjson.decode(cur)['generation']) end
if gen ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

# ARGV[4]: the device token's expiry in unix milliseconds (0: none); the token key then expires with it.
ENROL = """#!lua
local tok = redis.call('HMGET', KEYS[1], 'max', 'used', 'exp', 'revoked')
if not tok[1] then return 1 end
if tok[4] == '1' then return 5 end
if tonumber(ARGV[1]) >= tonumber(tok[3]) then return 2 end
if tonumber(tok[2]) >= tonumber(tok[1]) then return 3 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 4 end
redis.call('SET', KEYS[2], ARGV[2])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[3], ARGV[3], 'PXAT', ARGV[4])
else
  redis.call('SET', KEYS[3], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'used', 1)
return 0
"""

# KEYS: dev:{id}, tok:{old}, tok:{new}; ARGV: device id, old hash, new hash, expiry (unix ms)
RENEW = """#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], ARGV[1], 'PXAT', ARGV[4])
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""

# KEYS: dev:{id}; ARGV: the key prefix of token keys (`<prefix>tok:`). The device's key keeps a marker that is
# never a token hash, so the id stays taken and no token matches it.
REVOKE_DEVICE = """#!lua
local h = redis.call('GET', KEYS[1])
if not h then return 0 end
redis.call('DEL', ARGV[1] .. h)
redis.call('SET', KEYS[1], 'revoked')
return 1
"""

# KEYS[1] = cells index, KEYS[2] = the device's seen ids, KEYS[3] = its ledger for the server day; then 3 keys
# per report: cell hash, group device set, the device's ledger for the report's labelled day.
# ARGV = device, budget, ttl seconds, n, server day number, oldest kept day number; then per report: report id,
# cost, cell label, #support, support idx...
# Returns one code per report: 0 accepted, 1 duplicate, 2 over budget, 3 the device is already in the group.
INGEST = """#!lua
local device, budget, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local today, oldest = tonumber(ARGV[5]), tonumber(ARGV[6])
local seen, ledger = KEYS[2], KEYS[3]
redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. oldest)
local spent = tonumber(redis.call('GET', ledger) or '0')
local labelled = {}
local a = 7
local out = {}
for i = 0, n - 1 do
  local cell, devs, lkey = KEYS[4 + 3 * i], KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local rid, cost, label, ns = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  if labelled[lkey] == nil then labelled[lkey] = tonumber(redis.call('GET', lkey) or '0') end
  if redis.call('ZSCORE', seen, rid) then
    out[#out + 1] = 1
  elseif redis.call('SISMEMBER', devs, device) == 1 then
    out[#out + 1] = 3
  elseif spent + cost > budget or labelled[lkey] + cost > budget then
    out[#out + 1] = 2
  else
    spent = spent + cost
    labelled[lkey] = labelled[lkey] + cost
    redis.call('ZADD', seen, today, rid)
    redis.call('HINCRBY', cell, 'n', 1)
    for j = 0, ns - 1 do
      redis.call('HINCRBY', cell, ARGV[a + j], 1)
    end
    redis.call('SADD', devs, device)
    redis.call('SADD', KEYS[1], label)
    out[#out + 1] = 0
  end
  a = a + ns
end
redis.call('SET', ledger, spent, 'EX', ttl)
for lkey, v in pairs(labelled) do redis.call('SET', lkey, v, 'EX', ttl) end
if redis.call('EXISTS', seen) == 1 then redis.call('EXPIRE', seen, ttl) end
return out
"""
