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

# A counter's total over the buckets still in its window (those from bucket ``oldest``
# on), and those buckets as {bucket, total, ...}; with ``cleanup``, the buckets that
# left the window are deleted on the way. Shared by the checks below and by the LEASE
# script of ``walletgate.limiter.quota``, so both count a window the same way.
LIVE_BUCKETS = """
local function live_buckets(key, oldest, cleanup)
  local total, live = 0, {}
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    local bucket = tonumber(fields[j])
    if bucket ~= nil and bucket < oldest then
      if cleanup then redis.call('HDEL', key, fields[j]) end
    elseif bucket ~= nil then
      total = total + tonumber(fields[j + 1])
      live[#live + 1] = fields[j]
      live[#live + 1] = fields[j + 1]
    end
  end
  return total, live
end
"""

# The checks ADMIT and PEEK make. Counter i (1-based) is KEYS[ko + i]; its ARGV are
# bucket, oldest bucket, amount, limit, counter ttl at ARGV[ao + 5 * (i - 1) + 1 .. 5].
# ``missing`` returns {-1, {i...}} when counters first..last include missing ones;
# ``check`` returns nil when each of them has room, else {i, {bucket, total, ...}}
# (counter i would exceed its limit; its counted buckets). With ``cleanup``, buckets
# that left the window are deleted on the way (LIVE_BUCKETS). Counters marked in
# ``counted`` already hold the amount (a rebuild counted it): they are checked for it
# without adding it.
_CHECK = (
    LIVE_BUCKETS
    + """
local function missing(first, last, ko)
  local found = {}
  for i = first, last do
    if redis.call('EXISTS', KEYS[ko + i]) == 0 then found[#found + 1] = i end
  end
  if #found > 0 then return {-1, found} end
  return nil
end
local function check(first, last, ko, ao, cleanup, counted)
  for i = first, last do
    local key, base = KEYS[ko + i], ao + (i - 1) * 5
    local oldest = tonumber(ARGV[base + 2])
    local amount, limit = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
    if counted and counted[i] then amount = 0 end
    local total, live = live_buckets(key, oldest, cleanup)
    if total + amount > limit then return {i, live} end
  end
  return nil
end
"""
)

# One request's whole admission in one atomic step (one round trip):
#
# 1. with ARGV[1] ~= '': KEYS[1] is the state-version key, and the request was decided
#    on state version ARGV[1]. A newer or missing version answers {-2} with nothing
#    counted: the caller refreshes its state and decides again.
# 2. request counters (``r`` of them, counted whatever the decision): all fit and are
#    added for good, or none is added and the refusing one is named;
# 3. spend counters, in ``g`` groups of ARGV[5 + k] counters: all fit and are added,
#    each group's amounts written to its reservation record (the last ``g`` KEYS) so
#    they can be settled exactly once; or none is added (the request counts stay).
#    Idempotent per reservation: the audit row of a spend is written before its
#    reservation, so a counter rebuilt from PostgreSQL in between already counts it and
#    INIT wrote its entry into the record. A counter the record already names is
#    checked with the amount in it (total <= limit) and not added to again. A refusal
#    then answers {i, live, n, f}, n > 0 when the record already named counters of this
#    call: the caller takes those amounts back (REFUND), since the spend is not sent;
#    f = 1 when the refusing counter was rebuilt in the last REBUILT_FOR seconds (its
#    total may still hold rows of spends not reserved yet: the caller may try again;
#    the marker key REBUILT_PREFIX .. counter key, set by INIT, shares its hash tag);
# 4. once admitted, the ``h`` hash fields the request will need next (its cached
#    balances) are read and returned after the 0: {0, value or false, ...}.
#
# ARGV: expected version or '', record ttl, r, g, h, the g group sizes, five values per
# counter (requests first), then the h hash fields. KEYS: the version key (when
# checked), the counters, the g records, the h hashes. Missing counters are reported
# before anything is added. On one Redis server a whole request is one call; on a
# cluster, one call per hash tag (and the hashes are read apart).
#: Seconds after a rebuild during which a refusal says so (see ADMIT's step 3), and
#: the prefix of the key that marks it (outside the ``{wg:c:`` key space that tests and
#: tools scan for counters; its hash tag is the counter's).
REBUILT_FOR = 5
REBUILT_PREFIX = "wg:rebuilt:"

ADMIT = (
    _CHECK
    + f"local REBUILT_PREFIX = '{REBUILT_PREFIX}'\n"
    + """
local ko = 0
if ARGV[1] ~= '' then
  ko = 1
  local seen = tonumber(redis.call('GET', KEYS[1]))
  if seen == nil or seen > tonumber(ARGV[1]) then return {-2} end
end
local r, g, h = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ao, n = 5 + g, r
for k = 1, g do n = n + tonumber(ARGV[5 + k]) end
local absent = missing(1, n, ko)
if absent then return absent end
local counted, recounted, i = {}, 0, r
for k = 1, g do
  local record = KEYS[ko + n + k]
  for _ = 1, tonumber(ARGV[5 + k]) do
    i = i + 1
    if redis.call('HEXISTS', record, KEYS[ko + i]) == 1 then
      counted[i] = true
      recounted = recounted + 1
    end
  end
end
local refused = check(1, r, ko, ao, true, nil)
if refused then
  refused[3] = recounted
  return refused
end
local function add(i)
  local base = ao + (i - 1) * 5
  redis.call('HINCRBY', KEYS[ko + i], ARGV[base + 1], ARGV[base + 3])
  redis.call('EXPIRE', KEYS[ko + i], ARGV[base + 5])
  return base
end
for i = 1, r do add(i) end
refused = check(r + 1, n, ko, ao, true, counted)
if refused then
  refused[3] = recounted
  refused[4] = redis.call('EXISTS', REBUILT_PREFIX .. KEYS[ko + refused[1]])
  return refused
end
i = r
for k = 1, g do
  local record = KEYS[ko + n + k]
  for _ = 1, tonumber(ARGV[5 + k]) do
    i = i + 1
    if not counted[i] then
      local base = add(i)
      redis.call('HSET', record, KEYS[ko + i], ARGV[base + 1] .. ' ' .. ARGV[base + 3])
    end
  end
  redis.call('EXPIRE', record, ARGV[2])
end
local answer, fo = {0}, ao + n * 5
for j = 1, h do
  answer[j + 1] = redis.call('HGET', KEYS[ko + n + g + j], ARGV[fo + j])
end
return answer
"""
)

# The checks of ADMIT without any write (dry runs): KEYS are the counters only, ARGV
# five values per counter.
PEEK = (
    _CHECK
    + """
return missing(1, #KEYS, 0) or check(1, #KEYS, 0, 0, false, nil) or {0}
"""
)

# KEYS[1]: a missing counter; KEYS[2..]: records of in-flight reservations it counts.
# ARGV: counter ttl, bucket count b, b pairs (bucket, total), then per record: entry, ttl.
# Set-if-absent: a counter that exists (another process rebuilt it, or a reservation
# went in meanwhile) is left alone, so a total is never added onto another. ARGV[3 + 2b
# + 2r] (after the records' pairs) is how long to mark it as just rebuilt (KEYS[#KEYS]
# the marker): the rows of spends in flight then are counted, reserved or not yet (an
# allowed spend's row is written before its reservation).
INIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local b = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'm', '1')
for j = 1, b do
  redis.call('HSET', KEYS[1], ARGV[1 + 2 * j], ARGV[2 + 2 * j])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
local base = 2 + 2 * b
for k = 2, #KEYS - 1 do
  local at = base + 2 * (k - 2)
  redis.call('HSETNX', KEYS[k], KEYS[1], ARGV[at + 1])
  if redis.call('TTL', KEYS[k]) < tonumber(ARGV[at + 2]) then
    redis.call('EXPIRE', KEYS[k], ARGV[at + 2])
  end
end
redis.call('SET', KEYS[#KEYS], '1', 'EX', ARGV[#ARGV])
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
