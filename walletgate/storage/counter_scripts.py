"""The Lua scripts of the counters (``walletgate.storage.counters``), one atomic step each.

Data layout, all keys of one script sharing a hash tag (one Redis Cluster slot):

- a **counter** is a hash: field ``m`` marks it as initialised (so "missing" and "zero"
  differ), every other field is a bucket number holding a scaled integer amount;
- a **reservation record** ``{tag}:res:<id>`` is a hash: field = counter key, value =
  ``"<bucket> <scaled amount>"``, what the reservation added there, so it can be taken
  back exactly once.

Scripts never create a counter that is missing: they report it, and only ``INIT``
(called with totals rebuilt from PostgreSQL) creates it, if it is still absent.
Amounts go into ``HINCRBY`` as the decimal strings they arrived as: a Lua number turned
back into a string keeps only 14 significant digits.
"""

from __future__ import annotations

# The check both RESERVE and PEEK make over counters KEYS[1..n]; ARGV: record ttl, then
# per counter: bucket, oldest bucket, amount, limit, counter ttl. Returns nil when every
# counter has room, else the script's answer: {-1, {i...}} (counters i are missing) or
# {i, {bucket, total, ...}} (counter i would exceed its limit; its counted buckets).
# With ``cleanup``, buckets that left the window are deleted on the way.
_CHECK = """
local function check(n, cleanup)
  local missing = {}
  for i = 1, n do
    if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i end
  end
  if #missing > 0 then return {-1, missing} end
  for i = 1, n do
    local base = 1 + (i - 1) * 5
    local oldest = tonumber(ARGV[base + 2])
    local amount, limit = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
    local total, live = 0, {}
    local fields = redis.call('HGETALL', KEYS[i])
    for j = 1, #fields, 2 do
      local bucket = tonumber(fields[j])
      if bucket ~= nil and bucket < oldest then
        if cleanup then redis.call('HDEL', KEYS[i], fields[j]) end
      elseif bucket ~= nil then
        total = total + tonumber(fields[j + 1])
        live[#live + 1] = fields[j]
        live[#live + 1] = fields[j + 1]
      end
    end
    if total + amount > limit then return {i, live} end
  end
  return nil
end
"""

# KEYS: the counters of one group, then the reservation record. Returns {0} when
# reserved (every amount added, the record written), else what the check said, with
# nothing added.
RESERVE = (
    _CHECK
    + """
local n = #KEYS - 1
local refused = check(n, true)
if refused then return refused end
for i = 1, n do
  local base = 1 + (i - 1) * 5
  redis.call('HINCRBY', KEYS[i], ARGV[base + 1], ARGV[base + 3])
  redis.call('EXPIRE', KEYS[i], ARGV[base + 5])
  redis.call('HSET', KEYS[n + 1], KEYS[i], ARGV[base + 1] .. ' ' .. ARGV[base + 3])
end
redis.call('EXPIRE', KEYS[n + 1], ARGV[1])
return {0}
"""
)

# The check of RESERVE without any write (dry runs): KEYS are the counters only.
PEEK = (
    _CHECK
    + """
return check(#KEYS, false) or {0}
"""
)

# KEYS[1]: a missing counter; KEYS[2..]: records of in-flight reservations it counts.
# ARGV: counter ttl, bucket count b, b pairs (bucket, total), then per record: entry, ttl.
# Set-if-absent: a counter that exists (another process rebuilt it, or a reservation
# went in meanwhile) is left alone, so a total is never added onto another.
INIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local b = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'm', '1')
for j = 1, b do
  redis.call('HSET', KEYS[1], ARGV[1 + 2 * j], ARGV[2 + 2 * j])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
local base = 2 + 2 * b
for k = 2, #KEYS do
  local at = base + 2 * (k - 2)
  redis.call('HSETNX', KEYS[k], KEYS[1], ARGV[at + 1])
  if redis.call('TTL', KEYS[k]) < tonumber(ARGV[at + 2]) then
    redis.call('EXPIRE', KEYS[k], ARGV[at + 2])
  end
end
return 1
"""

# KEYS[1]: a reservation record; KEYS[2..]: the counters it named when read just before.
# Takes back what the record says and deletes it: a second refund finds nothing.
# Returns the entries refunded, or -1 when the record names an undeclared counter (a
# rebuild added one since it was read): nothing is changed and the caller reads again.
REFUND = """
local entries = redis.call('HGETALL', KEYS[1])
local declared = {}
for k = 2, #KEYS do declared[KEYS[k]] = true end
for j = 1, #entries, 2 do
  if not declared[entries[j]] then return -1 end
end
for j = 1, #entries, 2 do
  local key, entry = entries[j], entries[j + 1]
  local space = string.find(entry, ' ', 1, true)
  local bucket, amount = string.sub(entry, 1, space - 1), string.sub(entry, space + 1)
  if redis.call('HEXISTS', key, bucket) == 1 then
    if redis.call('HINCRBY', key, bucket, '-' .. amount) < 0 then
      -- Never below zero: a negative bucket would make later checks looser.
      redis.call('HSET', key, bucket, '0')
    end
  end
end
redis.call('DEL', KEYS[1])
return #entries / 2
"""
