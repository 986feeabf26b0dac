-- task_insert: add a task, making room by the rules of the cap, atomically.
-- KEYS[1]  every task: zset id -> when it is forgotten (ms), or the running
--          mark for tasks that have not finished
-- KEYS[2]  the tasks of the new task's service (zset, scored alike)
-- KEYS[3]  the new task's record (hash)
-- ARGV     id, record (JSON), now, max tasks, running mark, record key
--          prefix, service index prefix, how many forgotten tasks to remove
-- Returns  1 when added; 0 when every task held is unfinished and the cap is
--          reached.
-- Every key shares one hash tag, so the keys built here are in this slot.
local function forget(id)
  redis.call('ZREM', KEYS[1], id)
  local colon = string.find(id, ':', 1, true)
  if colon then
    redis.call('ZREM', ARGV[7] .. string.sub(id, colon + 1), id)
  end
  redis.call('DEL', ARGV[6] .. id)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, ARGV[8])
for _, id in ipairs(due) do
  forget(id)
end
local max = tonumber(ARGV[4])
while redis.call('ZCARD', KEYS[1]) >= max do
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5], 'LIMIT', 0, 1)
  if #oldest == 0 then
    return 0
  end
  forget(oldest[1])
end
redis.call('HSET', KEYS[3], 'v', 1, 'j', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return 1
