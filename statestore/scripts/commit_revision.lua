-- Record that a claimed revision was delivered to the metrics topic and, when the
-- caller passes the published keys, keep a copy of what was published for readers
-- (the HTTP API) in the same atomic step, so a reader never sees a revision the
-- emission hash does not know, nor misses one it does.
--
-- KEYS[1]  the window's emission hash
-- Optional, all on the emission slot:
-- KEYS[2]  published hash of the window: latest, revision, final, r:<N>, rollup
-- KEYS[3]  published index (zset of window starts)
-- KEYS[4]  newest published window: window_start, record
-- KEYS[5]  rollup index (zset of final windows with kept sketches)
-- KEYS[6..9]  the window's merged rollup HLLs: users, sessions, cart, purchase sessions
-- KEYS[10..]  scratch HLLs restored from the partitions (deleted here), by kind
-- ARGV[1]  the revision that was delivered, ARGV[2] TTL of the emission hash (seconds)
-- ARGV[3]  window start (epoch s), ARGV[4] retention of published copies (seconds)
-- ARGV[5]  revisions kept per window
-- ARGV[6]  rollup summary JSON of a final window, "" when not final
-- ARGV[7..10]  how many scratch keys hold each kind (users, sessions, cart, purchase)
-- Returns 1 when committed, 0 when that revision was not the pending one (another
-- emitter committed it already, and kept its copy).
local meta = KEYS[1]
local function drop_scratch()
  for i = 10, #KEYS do
    redis.call('DEL', KEYS[i])
  end
end

if tonumber(redis.call('HGET', meta, 'pending_revision') or '-1') ~= tonumber(ARGV[1]) then
  drop_scratch()
  return 0
end
local record = redis.call('HGET', meta, 'pending_record')
local final = redis.call('HGET', meta, 'pending_final')
redis.call('HSET', meta, 'revision', ARGV[1],
           'version', redis.call('HGET', meta, 'pending_version'),
           'final', final)
redis.call('HDEL', meta, 'pending_record', 'pending_revision', 'pending_version', 'pending_final')
redis.call('EXPIRE', meta, ARGV[2])
if #KEYS == 1 then
  return 1
end

local window_start, retention = tonumber(ARGV[3]), tonumber(ARGV[4])
local revision, kept = tonumber(ARGV[1]), tonumber(ARGV[5])
-- Retention runs in event time, like the windows: replaying old data keeps its windows.
local horizon = '(' .. (window_start - retention)
local published = KEYS[2]
redis.call('HSET', published, 'latest', record, 'revision', revision, 'final', final,
           'r:' .. revision, record)
if revision > kept then
  redis.call('HDEL', published, 'r:' .. (revision - kept))
end
redis.call('EXPIRE', published, retention)
redis.call('ZADD', KEYS[3], window_start, window_start)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', horizon)
redis.call('EXPIRE', KEYS[3], retention)
local newest = tonumber(redis.call('HGET', KEYS[4], 'window_start') or '-1')
if window_start >= newest then
  redis.call('HSET', KEYS[4], 'window_start', window_start, 'record', record)
end
redis.call('EXPIRE', KEYS[4], retention)

if ARGV[6] ~= '' then
  local scratch = 10
  for kind = 1, 4 do
    local sketch = KEYS[5 + kind]
    local count = tonumber(ARGV[6 + kind])
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
  redis.call('HSET', published, 'rollup', ARGV[6])
  redis.call('ZADD', KEYS[5], window_start, window_start)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', horizon)
  redis.call('EXPIRE', KEYS[5], retention)
end
drop_scratch()
return 1
