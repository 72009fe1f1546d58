-- Seal a partition's state up to a window: from now on, batches touching any window
-- that starts before the threshold are refused (apply_batch returns -1), so a
-- finalized window can never change after its final record is read.
--
-- KEYS[1]  partition hash
-- ARGV[1]  threshold: windows starting before it are sealed (window start + size)
-- Returns the partition's sealed_before after the call.
local current = tonumber(redis.call('HGET', KEYS[1], 'sealed_before') or '-1')
local threshold = tonumber(ARGV[1])
if threshold > current then
  redis.call('HSET', KEYS[1], 'sealed_before', ARGV[1])
  return threshold
end
return current
