-- Keep a final window's rollup sketches: one PFMERGEd copy per kind of its
-- per-partition HLLs (restored into scratch keys on this slot by the caller), its
-- summary, and its place in the rollup index; then drop it from the due list.
-- Idempotent: a repeated call merges the same sealed state again.
--
-- KEYS[1]  published hash of the window (gets field `rollup`, the summary)
-- KEYS[2]  rollup index (zset of window starts with kept sketches)
-- KEYS[3]  rollup due list (zset of final windows waiting for this script)
-- KEYS[4..7]  the window's rollup HLLs: users, sessions, cart, purchase sessions
-- KEYS[8..]  scratch HLLs restored from the partitions, by kind (deleted here)
-- ARGV[1]  window start (epoch s), ARGV[2] retention (seconds)
-- ARGV[3]  summary JSON
-- ARGV[4..7]  how many scratch keys hold each kind (users, sessions, cart, purchase)
-- Returns 1.
local window_start, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local scratch = 8
for kind = 1, 4 do
  local sketch = KEYS[3 + kind]
  local count = tonumber(ARGV[3 + kind])
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
  redis.call('EXPIRE', sketch, retention)
end
redis.call('HSET', KEYS[1], 'rollup', ARGV[3])
redis.call('EXPIRE', KEYS[1], retention)
-- Retention runs in event time, like the windows: replaying old data keeps its windows.
redis.call('ZADD', KEYS[2], window_start, window_start)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (window_start - retention))
redis.call('EXPIRE', KEYS[2], retention)
redis.call('ZREM', KEYS[3], window_start)
for i = 8, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
