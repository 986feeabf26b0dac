-- resolve: look a session up and refresh its idle timer, in one step.
-- KEYS[1]  the session hash
-- ARGV     now, idle timeout, TTL margin, TTL granularity (all milliseconds)
-- Returns  nil for a missing key (never creates one); 0 for a session that has
--          expired by `now` (deleted on the spot, so that no instance can use
--          it again); otherwise {user, groups, created, deadline, last access}.
local record = redis.call('HMGET', KEYS[1], 'u', 'g', 'c', 'd', 'a')
if not record[1] then
  return nil
end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local deadline = tonumber(record[4])
local last = tonumber(record[5])
local expiry = math.min(last + idle, deadline)
if now >= expiry then
  redis.call('DEL', KEYS[1])
  return 0
end
if now > last then
  redis.call('HSET', KEYS[1], 'a', ARGV[1])
  record[5] = ARGV[1]
  expiry = math.min(now + idle, deadline)
end
-- The TTL only cleans up: validity is decided above, against the caller's
-- clock. It is written only when it would move by more than the granularity.
local ttl = expiry - now + tonumber(ARGV[3])
local current = redis.call('PTTL', KEYS[1])
if current < 0 or math.abs(ttl - current) > tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl))
end
return record
