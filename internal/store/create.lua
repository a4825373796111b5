-- Store a new request with its first audit entry, its deadline and its indexes,
-- and reserve its scope and name for it: a name is held by one request at a time.
-- KEYS: 1 request hash, 2 audit stream, 3 audit head, 4 deadline zset,
--       5 pending zset, 6 requester's zset, 7 name reservation
-- ARGV: 1 state, 2 request json, 3 audit json, 4 request id, 5 deadline ms,
--       6 audit maxlen, 7 created ms
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS request id in use')
end
local holder = redis.call('GET', KEYS[7])
if holder and holder ~= ARGV[4] then
  return redis.error_reply('HELD ' .. holder)
end
redis.call('SET', KEYS[7], ARGV[4])
local prev = redis.call('GET', KEYS[3]) or ''
local h = redis.sha1hex(prev .. '\n' .. ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'entry', ARGV[3], 'prev', prev, 'hash', h)
redis.call('SET', KEYS[3], h)
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'version', '1', 'data', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[7], ARGV[4])
return 'OK'
