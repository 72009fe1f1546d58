-- Take, renew or hand back the lease that lets one replica run the emitter.
--
-- One script instead of WATCH/MULTI: atomic on a single key, so it behaves the
-- same on one Redis, with Sentinel and on Redis Cluster.
--
-- KEYS[1]  lease: the lease key (its value is the holder's name)
-- ARGV[1]  owner: the calling replica's name
-- ARGV[2]  ttl_ms: how long the lease lasts unless renewed ("0" hands it back)
-- (statestore.codec.LEASE_ARGV names these positions; a unit test holds them equal.)
-- Returns 1 when the caller holds the lease afterwards (or handed it back), else 0.
local lease = KEYS[1]
local owner = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local holder = redis.call('GET', lease)
if ttl_ms == 0 then
  if holder == owner then
    redis.call('DEL', lease)
  end
  return 1
end
if not holder then
  redis.call('SET', lease, owner, 'PX', ttl_ms)
  return 1
end
if holder == owner then
  redis.call('PEXPIRE', lease, ttl_ms)
  return 1
end
return 0
