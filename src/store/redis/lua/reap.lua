-- reap: delete a session if it has expired by `now`, atomically, so that a
-- session refreshed a moment ago is never removed.
-- KEYS[1]  the session's record (see resolve)
-- ARGV     now, idle timeout (milliseconds)
-- Returns  -1 for a missing key, 0 for an expired session (deleted now),
--          otherwise the live session's current expiry.
local record = redis.call('GET', KEYS[1])
if not record then
  return -1
end
local last = tonumber(string.sub(record, 1, 16))
local deadline = tonumber(string.sub(record, 35, 50))
if not last or not deadline then
  return redis.error_reply('malformed session record')
end
local expiry = math.min(last + tonumber(ARGV[2]), deadline)
if tonumber(ARGV[1]) >= expiry then
  redis.call('DEL', KEYS[1])
  return 0
end
return expiry
