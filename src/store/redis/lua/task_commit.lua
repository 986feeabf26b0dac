-- task_commit: write a task's new state if nobody changed it since it was
-- read (compare-and-set on the version); the status rules were applied by
-- the caller to the state of that version.
-- KEYS[1]  the task's record (hash: v version, j JSON, f forget-at, x cancelled)
-- KEYS[2]  every task (zset), KEYS[3] the tasks of its service (zset)
-- ARGV     version read, new JSON, id, forget-at ('' while unfinished), TTL
--          of a finished record (ms), '1' for a cancel, the cancel channel
-- Returns  1 written; 0 the version moved on (read again); -1 no record.
local version = redis.call('HGET', KEYS[1], 'v')
if not version then
  return -1
end
if version ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tonumber(version) + 1, 'j', ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'f', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[4], ARGV[3])
  redis.call('ZADD', KEYS[3], 'XX', ARGV[4], ARGV[3])
end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'x', '1')
  redis.call('PUBLISH', ARGV[7], ARGV[3])
end
return 1
