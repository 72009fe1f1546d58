-- Apply one source-partition batch atomically: window deltas, the offset fence,
-- the partition watermark and dead-letter counts, or nothing at all.
--
-- KEYS[1]   partition: hash of fence, watermark, applied_at, owner, sealed_before,
--           dlq:<reason>
-- KEYS[2]   window_index: the partition's windows (zset, member and score = start)
-- KEYS[3..] per window, 1 + hll_keys + sorted_set_keys keys: its counters hash,
--           its HLLs, its sorted sets (statestore.metrics.WINDOW_KEY_SUFFIXES)
-- ARGV[1]   expected_fence: the fence the caller last read (-1 when none)
-- ARGV[2]   first_offset: first offset of the batch
-- ARGV[3]   last_offset: last offset of the batch
-- ARGV[4]   watermark_s: batch watermark (max event time applied, epoch s; "" for none)
-- ARGV[5]   now_ms: wall clock (epoch ms), kept as applied_at
-- ARGV[6]   ttl_s: TTL of window keys (seconds)
-- ARGV[7]   owner: the applying replica's name
-- ARGV[8]   sorted_set_cap: distinct members a window's sorted set admits
-- ARGV[9]   hll_keys: HLL keys per window
-- ARGV[10]  sorted_set_keys: sorted-set keys per window
-- ARGV[11]  windows: W, the number of windows, then W window starts
-- then per window: the counters (a list of fields, then their increments), each HLL
-- (a list of members), each sorted set (its overflow field in the counters hash, a
-- list of members in first-occurrence order, then their increments), where a list
-- is read by take_list and increments by take_numbers;
-- then dead letters: n, then n reason/count pairs.
-- (statestore.codec.APPLY_ARGV names these positions; a unit test holds them equal.)
--
-- Returns {status, fence, sealed_before}:
--   1  applied; fence is now the batch's last offset
--   0  stale: the stored fence is not the expected one, or the batch does not start
--      after it (a replayed or zombie batch); nothing written
--  -1  sealed: a window of the batch was finalized; nothing written, refold
local partition, window_index = KEYS[1], KEYS[2]
local expected_fence = tonumber(ARGV[1])
local first_offset = tonumber(ARGV[2])
local last_offset = ARGV[3]
local watermark_s = ARGV[4]
local now_ms = ARGV[5]
local ttl_s = tonumber(ARGV[6])
local owner = ARGV[7]
local sorted_set_cap = tonumber(ARGV[8])
local hll_keys = tonumber(ARGV[9])
local sorted_set_keys = tonumber(ARGV[10])
local windows = tonumber(ARGV[11])
local HEADER = 11
local SLICE = 1000  -- members per call: unpack() is bounded by Lua's C stack

local fence = tonumber(redis.call('HGET', partition, 'fence') or '-1')
local sealed_before = tonumber(redis.call('HGET', partition, 'sealed_before') or '-1')

if fence ~= expected_fence or first_offset <= fence then
  return {0, fence, sealed_before}
end

for i = 1, windows do
  if tonumber(ARGV[HEADER + i]) < sealed_before then
    return {-1, fence, sealed_before}
  end
end

local pos = HEADER + windows + 1
local function take()
  local value = ARGV[pos]
  pos = pos + 1
  return value
end

-- A list of members: -n and one argument of n members joined by "\n", or n and then
-- n arguments (statestore.codec.encode_members).
local function take_list()
  local n = tonumber(take())
  local list = {}
  if n < 0 then
    -- A plain find (memchr-like) per member: cheaper than a pattern's character class.
    local packed, start = take(), 1
    for i = 1, -n - 1 do
      local stop = string.find(packed, '\n', start, true)
      list[i] = string.sub(packed, start, stop - 1)
      start = stop + 1
    end
    list[-n] = string.sub(packed, start)
  else
    for i = 1, n do
      list[i] = take()
    end
  end
  return list
end

-- Integers in one argument, space-separated (statestore.codec.encode_numbers).
local function take_numbers()
  local numbers = {}
  for number in string.gmatch(take(), '%S+') do
    numbers[#numbers + 1] = number
  end
  return numbers
end

-- PFADD, ZMSCORE and ZADD take many members per call; unpack() in slices.
local function add_members(key, members)
  for i = 1, #members, SLICE do
    redis.call('PFADD', key, unpack(members, i, math.min(i + SLICE - 1, #members)))
  end
end

-- A sorted set admits new members up to the cap; the increments of refused ones
-- go to its overflow counter. Members arrive in first-occurrence order and the
-- fence orders batches, so which members get in depends only on the partition's
-- records, never on batch boundaries. One ZCARD, then per slice one ZMSCORE (which
-- members exist, and their scores) and one ZADD of the summed scores: a ZINCRBY per
-- member cost Redis a command each. Counts are integers far below 2^53, so the sum
-- in a Lua double is exactly what ZINCRBY would store. Returns the refused count.
local function add_capped(key, members, increments)
  local size = redis.call('ZCARD', key)
  local refused = 0
  for i = 1, #members, SLICE do
    local last = math.min(i + SLICE - 1, #members)
    local scores = redis.call('ZMSCORE', key, unpack(members, i, last))
    local pairs_ = {}
    for j = i, last do
      local score = scores[j - i + 1]
      local increment = tonumber(increments[j])
      if score then
        pairs_[#pairs_ + 1] = tonumber(score) + increment
        pairs_[#pairs_ + 1] = members[j]
      elseif size < sorted_set_cap then
        pairs_[#pairs_ + 1] = increment
        pairs_[#pairs_ + 1] = members[j]
        size = size + 1
      else
        refused = refused + increment
      end
    end
    if #pairs_ > 0 then
      redis.call('ZADD', key, unpack(pairs_))
    end
  end
  return refused
end

local keys_per_window = 1 + hll_keys + sorted_set_keys
for i = 1, windows do
  local window_start = ARGV[HEADER + i]
  local base = 2 + (i - 1) * keys_per_window
  local counters = KEYS[base + 1]
  local fields = take_list()
  local increments = take_numbers()
  for f = 1, #fields do
    redis.call('HINCRBY', counters, fields[f], increments[f])
  end
  for h = 1, hll_keys do
    add_members(KEYS[base + 1 + h], take_list())
  end
  for z = 1, sorted_set_keys do
    local overflow_field = take()
    local members = take_list()
    local refused = add_capped(KEYS[base + 1 + hll_keys + z], members, take_numbers())
    if refused > 0 then
      redis.call('HINCRBY', counters, overflow_field, refused)
    end
  end
  for k = 1, keys_per_window do
    redis.call('EXPIRE', KEYS[base + k], ttl_s)
  end
  redis.call('ZADD', window_index, window_start, window_start)
end

for _ = 1, tonumber(take()) do
  local reason = take()
  redis.call('HINCRBY', partition, 'dlq:' .. reason, take())
end

local previous = redis.call('HGET', partition, 'watermark')
if watermark_s ~= '' and (not previous or tonumber(watermark_s) > tonumber(previous)) then
  redis.call('HSET', partition, 'watermark', watermark_s)
end
redis.call('HSET', partition, 'fence', last_offset, 'applied_at', now_ms, 'owner', owner)
return {1, tonumber(last_offset), sealed_before}
