-- resolve: look a session up and refresh its idle timer, in one step.
-- KEYS[1]  the session's record (a string, see record.rs: last access at
--          1-16, TTL expiry at 18-33, deadline at 35-50)
-- ARGV     now, idle timeout, TTL margin, TTL granularity (all milliseconds)
-- Returns  nil for a missing key (never creates one); 0 for a session that has
--          expired by `now` (deleted on the spot, so that no instance can use
--          it again); otherwise the record as it was before this refresh.
local record = redis.call('GET', KEYS[1])
if not record then
  return nil
end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local last = tonumber(string.sub(record, 1, 16))
local deadline = tonumber(string.sub(record, 35, 50))
if not last or not deadline then
  return redis.error_reply('malformed session record')
end
if now >= math.min(last + idle, deadline) then
  redis.call('DEL', KEYS[1])
  return 0
end
if now > last then
  -- The TTL only cleans up: validity is decided above, against the caller's
  -- clock. It is written only when the expiry moved by more than the
  -- granularity since it was last written (which the record remembers).
  local expiry = math.min(now + idle, deadline)
  if expiry - tonumber(string.sub(record, 18, 33)) > tonumber(ARGV[4]) then
    redis.call('SETRANGE', KEYS[1], 0, string.format('%016d %016d', now, expiry))
    redis.call('PEXPIRE', KEYS[1], expiry - now + tonumber(ARGV[3]))
  else
    redis.call('SETRANGE', KEYS[1], 0, string.format('%016d', now))
  end
end
return record
