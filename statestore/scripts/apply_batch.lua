-- Apply one source-partition batch atomically: window deltas, the offset fence,
-- the partition watermark and dead-letter counts, or nothing at all.
--
-- KEYS[1]   partition hash: fence, watermark, applied_at, owner, sealed_before,
--           dlq:<reason>
-- KEYS[2]   the partition's window index (zset, member and score = window start)
-- KEYS[3..] per window, 7 keys: counters hash, users HLL, sessions HLL,
--           cart-sessions HLL, purchase-sessions HLL, pages zset, referrers zset
-- ARGV[1]   expected fence: the fence the caller last read (-1 when none)
-- ARGV[2]   first offset of the batch, ARGV[3] last offset of the batch
-- ARGV[4]   batch watermark (max event time applied, epoch seconds; "" for none)
-- ARGV[5]   now (epoch ms), ARGV[6] TTL of window keys (seconds)
-- ARGV[7]   the applying replica's name (kept as the partition's owner)
-- ARGV[8]   W, the number of windows, then W window starts
-- then per window: counters (n, then n field/increment pairs), four HLLs (n, then n
-- members each), pages and referrers (n, then n member/increment pairs);
-- then dead letters: n, then n reason/count pairs.
--
-- Returns {status, fence, sealed_before}:
--   1  applied; fence is now the batch's last offset
--   0  stale: the stored fence is not the expected one, or the batch does not start
--      after it (a replayed or zombie batch); nothing written
--  -1  sealed: a window of the batch was finalized; nothing written, refold
local part = KEYS[1]
local stored = redis.call('HGET', part, 'fence')
local fence = tonumber(stored or '-1')
local sealed_before = tonumber(redis.call('HGET', part, 'sealed_before') or '-1')
local first, last = tonumber(ARGV[2]), tonumber(ARGV[3])

if fence ~= tonumber(ARGV[1]) or first <= fence then
  return {0, fence, sealed_before}
end

local nwindows = tonumber(ARGV[8])
for i = 1, nwindows do
  if tonumber(ARGV[8 + i]) < sealed_before then
    return {-1, fence, sealed_before}
  end
end

local ttl = tonumber(ARGV[6])
local pos = 9 + nwindows
local function take()
  local value = ARGV[pos]
  pos = pos + 1
  return value
end

-- unpack() is bounded by Lua's C stack; add members in slices.
local function add_members(key, n)
  local chunk = {}
  for _ = 1, n do
    chunk[#chunk + 1] = take()
    if #chunk == 1000 then
      redis.call('PFADD', key, unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then
    redis.call('PFADD', key, unpack(chunk))
  end
end

for i = 1, nwindows do
  local window_start = ARGV[8 + i]
  local base = 2 + (i - 1) * 7
  local counters = KEYS[base + 1]
  for _ = 1, tonumber(take()) do
    local field = take()
    redis.call('HINCRBY', counters, field, take())
  end
  for h = 2, 5 do
    add_members(KEYS[base + h], tonumber(take()))
  end
  for z = 6, 7 do
    local key = KEYS[base + z]
    for _ = 1, tonumber(take()) do
      local member = take()
      redis.call('ZINCRBY', key, take(), member)
    end
  end
  for k = 1, 7 do
    redis.call('EXPIRE', KEYS[base + k], ttl)
  end
  redis.call('ZADD', KEYS[2], window_start, window_start)
end

for _ = 1, tonumber(take()) do
  local reason = take()
  redis.call('HINCRBY', part, 'dlq:' .. reason, take())
end

local watermark = ARGV[4]
local previous = redis.call('HGET', part, 'watermark')
if watermark ~= '' and (not previous or tonumber(watermark) > tonumber(previous)) then
  redis.call('HSET', part, 'watermark', watermark)
end
redis.call('HSET', part, 'fence', last, 'applied_at', ARGV[5], 'owner', ARGV[7])
return {1, last, sealed_before}
