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
-- then per window: counters (n, then n field/increment pairs), each HLL (n, then n
-- members), each sorted set (its overflow field in the counters hash, n, then n
-- member/increment pairs in first-occurrence order);
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
local PFADD_SLICE = 1000  -- unpack() is bounded by Lua's C stack; add members in slices

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

local function add_members(key, n)
  local chunk = {}
  for _ = 1, n do
    chunk[#chunk + 1] = take()
    if #chunk == PFADD_SLICE then
      redis.call('PFADD', key, unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then
    redis.call('PFADD', key, unpack(chunk))
  end
end

-- A sorted set admits new members up to the cap; the increments of refused ones
-- go to its overflow counter. Members arrive in first-occurrence order and the
-- fence orders batches, so which members get in depends only on the partition's
-- records, never on batch boundaries. One ZCARD per key; ZSCORE per member only
-- when this batch could reach the cap.
local function add_capped(key, counters, overflow_field, n)
  local size = redis.call('ZCARD', key)
  if size + n <= sorted_set_cap then
    for _ = 1, n do
      local member = take()
      redis.call('ZINCRBY', key, take(), member)
    end
    return
  end
  local refused = 0
  for _ = 1, n do
    local member = take()
    local increment = take()
    if redis.call('ZSCORE', key, member) then
      redis.call('ZINCRBY', key, increment, member)
    elseif size < sorted_set_cap then
      redis.call('ZINCRBY', key, increment, member)
      size = size + 1
    else
      refused = refused + tonumber(increment)
    end
  end
  if refused > 0 then
    redis.call('HINCRBY', counters, overflow_field, refused)
  end
end

local keys_per_window = 1 + hll_keys + sorted_set_keys
for i = 1, windows do
  local window_start = ARGV[HEADER + i]
  local base = 2 + (i - 1) * keys_per_window
  local counters = KEYS[base + 1]
  for _ = 1, tonumber(take()) do
    local field = take()
    redis.call('HINCRBY', counters, field, take())
  end
  for h = 1, hll_keys do
    add_members(KEYS[base + 1 + h], tonumber(take()))
  end
  for z = 1, sorted_set_keys do
    local overflow_field = take()
    add_capped(KEYS[base + 1 + hll_keys + z], counters, overflow_field, tonumber(take()))
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
