-- Seal a partition's state up to a window: from now on, batches touching any window
-- that starts before the threshold are refused (apply_batch returns -1), so a
-- finalized window can never change after its final record is read.
--
-- The emitter decided to seal from partition state it read earlier. If the
-- partition's fence has since gone below what it read, Redis lost that state (a
-- restart without persistence, a flush): sealing now would turn the rebuild of the
-- lost events into too-late dead letters, so the script refuses instead.
--
-- KEYS[1]  partition: the partition hash
-- ARGV[1]  threshold: windows starting before it are sealed (window start + size)
-- ARGV[2]  min_fence: the fence the emitter saw when it decided (-1: none)
-- (statestore.codec.SEAL_ARGV names these positions; a unit test holds them equal.)
-- Returns {1, sealed_before} once sealed, or {0, fence} when the state was lost.
local partition = KEYS[1]
local threshold = tonumber(ARGV[1])
local min_fence = tonumber(ARGV[2])
local fence = tonumber(redis.call('HGET', partition, 'fence') or '-1')
if fence < min_fence then
  return {0, fence}
end
local current = tonumber(redis.call('HGET', partition, 'sealed_before') or '-1')
if threshold > current then
  redis.call('HSET', partition, 'sealed_before', threshold)
  return {1, threshold}
end
return {1, current}
