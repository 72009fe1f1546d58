-- Record that a claimed revision was delivered to the metrics topic and, when the
-- caller passes the published keys, keep a copy of what was published for readers
-- (the HTTP API) in the same atomic step, so a reader never sees a revision the
-- emission hash does not know, nor misses one it does.
--
-- KEYS[1]  emission: the window's emission hash
-- Optional, all on the emission slot (statestore.published):
-- KEYS[2]  published: the window's published hash (latest, revision, final, r:<N>)
-- KEYS[3]  published_index: zset of published window starts
-- KEYS[4]  published_latest: the newest published window (window_start, record)
-- KEYS[5]  rollup_due: final windows whose sketches keep_sketches.lua keeps next
-- ARGV[1]  revision: the revision that was delivered
-- ARGV[2]  ttl_s: TTL of the emission hash (seconds)
-- ARGV[3]  window_start: the window's start (epoch s), with the published keys only
-- ARGV[4]  retention_s: how long published copies are kept (event time, seconds)
-- ARGV[5]  revisions_kept: revisions kept per window
-- (statestore.codec.COMMIT_KEYS/COMMIT_ARGV name these positions; a unit test holds
-- them equal.)
-- Returns 1 when committed, 0 when that revision was not the pending one (another
-- emitter committed it already, and kept its copy).
local emission = KEYS[1]
local published = KEYS[2]
local published_index = KEYS[3]
local published_latest = KEYS[4]
local rollup_due = KEYS[5]
local revision = tonumber(ARGV[1])
local ttl_s = ARGV[2]
local window_start = tonumber(ARGV[3])
local retention_s = tonumber(ARGV[4])
local revisions_kept = tonumber(ARGV[5])
if tonumber(redis.call('HGET', emission, 'pending_revision') or '-1') ~= revision then
  return 0
end
local record = redis.call('HGET', emission, 'pending_record')
local final = redis.call('HGET', emission, 'pending_final')
redis.call('HSET', emission, 'revision', revision,
           'version', redis.call('HGET', emission, 'pending_version'), 'final', final)
redis.call('HDEL', emission, 'pending_record', 'pending_revision', 'pending_version',
           'pending_final')
redis.call('EXPIRE', emission, ttl_s)
if not published then
  return 1
end

-- Retention runs in event time, like the windows: replaying old data keeps its windows.
local horizon = '(' .. (window_start - retention_s)
redis.call('HSET', published, 'latest', record, 'revision', revision, 'final', final,
           'r:' .. revision, record)
if revision > revisions_kept then
  redis.call('HDEL', published, 'r:' .. (revision - revisions_kept))
end
redis.call('EXPIRE', published, retention_s)
redis.call('ZADD', published_index, window_start, window_start)
redis.call('ZREMRANGEBYSCORE', published_index, '-inf', horizon)
redis.call('EXPIRE', published_index, retention_s)
local newest = tonumber(redis.call('HGET', published_latest, 'window_start') or '-1')
if window_start >= newest then
  redis.call('HSET', published_latest, 'window_start', window_start, 'record', record)
end
redis.call('EXPIRE', published_latest, retention_s)
if final == '1' then
  redis.call('ZADD', rollup_due, window_start, window_start)
  redis.call('EXPIRE', rollup_due, retention_s)
end
return 1
