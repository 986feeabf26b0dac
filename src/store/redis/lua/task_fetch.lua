-- task_fetch: some fields of many task records, in one step.
-- KEYS     the records
-- ARGV     the fields
-- Returns  per record, its values of the fields (nil where absent).
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HMGET', key, unpack(ARGV))
end
return found
