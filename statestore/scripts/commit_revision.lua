-- Record that a claimed revision was delivered to the metrics topic.
--
-- KEYS[1]  emission: the window's emission hash
-- ARGV[1]  revision: the revision that was delivered
-- ARGV[2]  ttl_s: TTL of the hash (seconds)
-- (statestore.codec.COMMIT_ARGV names these positions; a unit test holds them equal.)
-- Returns 1 when committed, 0 when that revision was not the pending one (another
-- emitter committed it already).
local emission = KEYS[1]
local revision = tonumber(ARGV[1])
local ttl_s = ARGV[2]
if tonumber(redis.call('HGET', emission, 'pending_revision') or '-1') ~= revision then
  return 0
end
redis.call('HSET', emission, 'revision', ARGV[1],
           'version', redis.call('HGET', emission, 'pending_version'),
           'final', redis.call('HGET', emission, 'pending_final'))
redis.call('HDEL', emission, 'pending_record', 'pending_revision', 'pending_version',
           'pending_final')
redis.call('EXPIRE', emission, ttl_s)
return 1
