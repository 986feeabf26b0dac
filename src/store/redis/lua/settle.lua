-- settle: bring the index up to date with what reap (or delete) found.
-- KEYS     all, owner, users (see admit)
-- ARGV     pairs of (session name, expiry): expiry '-' removes the name and counts one
--          session less for its user; a number raises the name's expiry hint
--          (only if it is still indexed, so a concurrent delete is never undone)
-- Returns  how many names it removed.
local removed = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if ARGV[i + 1] == '-' then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      removed = removed + 1
      local user = redis.call('HGET', KEYS[2], id)
      redis.call('HDEL', KEYS[2], id)
      if user and redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
        redis.call('HDEL', KEYS[3], user)
      end
    end
  else
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) < tonumber(ARGV[i + 1]) then
      redis.call('ZADD', KEYS[1], 'XX', ARGV[i + 1], id)
    end
  end
end
return removed
