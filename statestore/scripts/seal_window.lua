-- Seal a partition's state up to a window: from now on, batches touching any window
-- that starts before the threshold are refused (apply_batch returns -1), so a
-- finalized window can never change after its final record is read.
--
-- KEYS[1]  partition: the partition hash
-- ARGV[1]  threshold: windows starting before it are sealed (window start + size)
-- (statestore.codec.SEAL_ARGV names these positions; a unit test holds them equal.)
-- Returns the partition's sealed_before after the call.
local partition = KEYS[1]
local threshold = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', partition, 'sealed_before') or '-1')
if threshold > current then
  redis.call('HSET', partition, 'sealed_before', ARGV[1])
  return threshold
end
return current
