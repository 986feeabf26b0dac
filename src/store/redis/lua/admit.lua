-- admit: count a new session against the caps, atomically.
-- KEYS     the index: all (zset name -> expiry hint), owner (hash name -> user),
--          users (hash user -> sessions); one hash tag, one slot
-- ARGV     session name (a digest of the id), user, expiry hint, max sessions, max per user, now, how many
--          due names to return for incremental clean-up
-- Returns  {status, due names}; status 1 admitted, -1 store full, -2 user full,
--          -3 name already indexed.
local status = 1
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  status = -1
elseif tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0') >= tonumber(ARGV[5]) then
  status = -2
elseif redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
else
  status = -3
end
local due = {}
if tonumber(ARGV[7]) > 0 then
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[6], 'LIMIT', 0, ARGV[7])
end
return {status, due}
