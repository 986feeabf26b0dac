-- task_forget: remove tasks whose retention has passed, with their records.
-- KEYS[1]  every task (zset id -> forget-at, see task_insert)
-- ARGV     now, how many at most, record key prefix, service index prefix
-- Returns  how many it removed.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local colon = string.find(id, ':', 1, true)
  if colon then
    redis.call('ZREM', ARGV[4] .. string.sub(id, colon + 1), id)
  end
  redis.call('DEL', ARGV[3] .. id)
end
return #due
