-- reap: delete a session if it has expired by `now`, atomically, so that a
-- session refreshed a moment ago is never removed.
-- KEYS[1]  the session hash
-- ARGV     now, idle timeout (milliseconds)
-- Returns  -1 for a missing key, 0 for an expired session (deleted now),
--          otherwise the live session's current expiry.
local record = redis.call('HMGET', KEYS[1], 'd', 'a')
if not record[1] then
  return -1
end
local expiry = math.min(tonumber(record[2]) + tonumber(ARGV[2]), tonumber(record[1]))
if tonumber(ARGV[1]) >= expiry then
  redis.call('DEL', KEYS[1])
  return 0
end
return expiry
