-- Record that a claimed revision was delivered to the metrics topic and, when the
-- caller passes the published keys, keep a copy of what was published for readers
-- (the HTTP API) in the same atomic step, so a reader never sees a revision the
-- emission hash does not know, nor misses one it does.
--
-- KEYS[1]  the window's emission hash
-- Optional, all on the emission slot:
-- KEYS[2]  published hash of the window: latest, revision, final, r:<N>
-- KEYS[3]  published index (zset of window starts)
-- KEYS[4]  newest published window: window_start, record
-- KEYS[5]  rollup due list: final windows whose sketches keep_sketches.lua keeps next
-- ARGV[1]  the revision that was delivered, ARGV[2] TTL of the emission hash (seconds)
-- ARGV[3]  window start (epoch s), ARGV[4] retention of published copies (seconds)
-- ARGV[5]  revisions kept per window
-- Returns 1 when committed, 0 when that revision was not the pending one (another
-- emitter committed it already, and kept its copy).
local meta = KEYS[1]
if tonumber(redis.call('HGET', meta, 'pending_revision') or '-1') ~= tonumber(ARGV[1]) then
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
if final == '1' then
  redis.call('ZADD', KEYS[5], window_start, window_start)
  redis.call('EXPIRE', KEYS[5], retention)
end
return 1
