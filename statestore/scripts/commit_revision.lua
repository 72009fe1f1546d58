-- Record that a claimed revision was delivered to the metrics topic.
--
-- KEYS[1]  the window's emission hash
-- ARGV[1]  the revision that was delivered, ARGV[2] TTL of the hash (seconds)
-- Returns 1 when committed, 0 when that revision was not the pending one (another
-- emitter committed it already).
local meta = KEYS[1]
if tonumber(redis.call('HGET', meta, 'pending_revision') or '-1') ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', meta, 'revision', ARGV[1],
           'version', redis.call('HGET', meta, 'pending_version'),
           'final', redis.call('HGET', meta, 'pending_final'))
redis.call('HDEL', meta, 'pending_record', 'pending_revision', 'pending_version', 'pending_final')
redis.call('EXPIRE', meta, ARGV[2])
return 1
