-- create: write a new session record, never over an existing key.
-- KEYS[1]  the session hash
-- ARGV     user, groups (JSON), created, deadline, TTL (milliseconds)
-- Returns  1 when written, 0 when the key exists (the caller draws a new id).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'g', ARGV[2], 'c', ARGV[3], 'd', ARGV[4], 'a', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
