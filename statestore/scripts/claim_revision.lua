-- Claim the next revision of a window for publication (write-ahead of the record).
--
-- The record is stored before it is produced, so an emitter that dies between
-- producing and committing leaves it behind: the next emitter publishes the very
-- same bytes again instead of a second, different record with the same revision.
--
-- KEYS[1]  emission: the window's emission hash: revision, version, final, pending_*
-- ARGV[1]  last_revision: the revision the caller last read (0 when never published)
-- ARGV[2]  record: the record (JSON) of revision last_revision + 1
-- ARGV[3]  version: events merged into it
-- ARGV[4]  final: "1" if final else "0"
-- ARGV[5]  ttl_s: TTL of the hash (seconds)
-- (statestore.codec.CLAIM_ARGV names these positions; a unit test holds them equal.)
-- Returns {1} claimed; {0, record, version, final, revision} a claim is pending:
-- publish that one; {-1} the revision moved on: read again.
local emission = KEYS[1]
local last_revision = tonumber(ARGV[1])
local record = ARGV[2]
local version = ARGV[3]
local final = ARGV[4]
local ttl_s = ARGV[5]
local pending = redis.call('HGET', emission, 'pending_record')
if pending then
  return {0, pending, redis.call('HGET', emission, 'pending_version'),
          redis.call('HGET', emission, 'pending_final'),
          redis.call('HGET', emission, 'pending_revision')}
end
local revision = tonumber(redis.call('HGET', emission, 'revision') or '0')
if revision ~= last_revision then
  return {-1}
end
redis.call('HSET', emission, 'pending_record', record, 'pending_revision', revision + 1,
           'pending_version', version, 'pending_final', final)
redis.call('EXPIRE', emission, ttl_s)
return {1}
