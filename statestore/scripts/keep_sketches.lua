-- Keep a final window's rollup sketches: one PFMERGEd copy per kind of its
-- per-partition HLLs (restored into scratch keys on this slot by the caller), its
-- summary, and its place in the rollup index; then drop it from the due list.
-- Idempotent: a repeated call merges the same sealed state again.
--
-- KEYS[1]  published: the window's published hash (gets field `rollup`, the summary)
-- KEYS[2]  rollup_index: zset of window starts with kept sketches
-- KEYS[3]  rollup_due: zset of final windows waiting for this script
-- KEYS[4..] the window's rollup HLLs, one per HLL metric (ARGV[4] of them), then the
--           scratch HLLs restored from the partitions, kind by kind (deleted here)
-- ARGV[1]  window_start: the window's start (epoch s)
-- ARGV[2]  retention_s: how long the sketches are kept (event time, seconds)
-- ARGV[3]  summary: the window's summary (JSON)
-- ARGV[4]  kinds: how many HLL metrics; then, per kind, how many scratch keys hold it
-- (statestore.codec.KEEP_KEYS/KEEP_ARGV name these positions; a unit test holds them
-- equal.)
-- Returns 1.
local published = KEYS[1]
local rollup_index = KEYS[2]
local rollup_due = KEYS[3]
local window_start = tonumber(ARGV[1])
local retention_s = tonumber(ARGV[2])
local summary = ARGV[3]
local kinds = tonumber(ARGV[4])
local HEADER_KEYS = 3
local first_scratch = HEADER_KEYS + kinds + 1
local scratch = first_scratch
for kind = 1, kinds do
  local sketch = KEYS[HEADER_KEYS + kind]
  local count = tonumber(ARGV[4 + kind])
  local sources = {}
  for i = scratch, scratch + count - 1 do
    sources[#sources + 1] = KEYS[i]
  end
  scratch = scratch + count
  redis.call('DEL', sketch)
  if #sources > 0 then
    redis.call('PFMERGE', sketch, unpack(sources))
  else
    redis.call('PFADD', sketch)
  end
  redis.call('EXPIRE', sketch, retention_s)
end
redis.call('HSET', published, 'rollup', summary)
redis.call('EXPIRE', published, retention_s)
-- Retention runs in event time, like the windows: replaying old data keeps its windows.
redis.call('ZADD', rollup_index, window_start, window_start)
redis.call('ZREMRANGEBYSCORE', rollup_index, '-inf', '(' .. (window_start - retention_s))
redis.call('EXPIRE', rollup_index, retention_s)
redis.call('ZREM', rollup_due, window_start)
for i = first_scratch, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
