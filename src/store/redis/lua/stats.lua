-- stats: sessions indexed and users holding at least one.
-- KEYS     all, users
-- Returns  {sessions, users}
return {redis.call('ZCARD', KEYS[1]), redis.call('HLEN', KEYS[2])}
