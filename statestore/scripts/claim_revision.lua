-- Claim the next revision of a window for publication (write-ahead of the record).
--
-- The record is stored before it is produced, so an emitter that dies between
-- producing and committing leaves it behind: the next emitter publishes the very
-- same bytes again instead of a second, different record with the same revision.
--
-- KEYS[1]  the window's emission hash: revision, version, final, pending_*
-- ARGV[1]  the revision the caller last read (0 when never published)
-- ARGV[2]  the record (JSON) of revision ARGV[1] + 1
-- ARGV[3]  its version (events merged into it), ARGV[4] "1" if final else "0"
-- ARGV[5]  TTL of the hash (seconds)
-- Returns {1} claimed; {0, record, version, final, revision} a claim is pending:
-- publish that one; {-1} the revision moved on: read again.
local meta = KEYS[1]
local pending = redis.call('HGET', meta, 'pending_record')
if pending then
  return {0, pending, redis.call('HGET', meta, 'pending_version'),
          redis.call('HGET', meta, 'pending_final'), redis.call('HGET', meta, 'pending_revision')}
end
local revision = tonumber(redis.call('HGET', meta, 'revision') or '0')
if revision ~= tonumber(ARGV[1]) then
  return {-1}
end
redis.call('HSET', meta, 'pending_record', ARGV[2], 'pending_revision', revision + 1,
           'pending_version', ARGV[3], 'pending_final', ARGV[4])
redis.call('EXPIRE', meta, ARGV[5])
return {1}
