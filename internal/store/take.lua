-- Reveal: take and delete the sealed secret of an ISSUED request and mark it
-- DELIVERED, atomically, so that two clicks on two replicas reveal once.
-- KEYS: 1 request hash, 2 sealed secret, 3 audit stream, 4 audit head, 5 deadline zset
-- ARGV: 1 expected version, 2 request json, 3 audit json, 4 request id,
--       5 audit maxlen, 6 next deadline ms ("" none)
local st = redis.call('HGET', KEYS[1], 'state')
local ver = redis.call('HGET', KEYS[1], 'version')
if st ~= 'ISSUED' or ver ~= ARGV[1] then
  return redis.error_reply('CONFLICT request moved on')
end
local sealed = redis.call('GET', KEYS[2])
if not sealed then
  return redis.error_reply('GONE no sealed secret')
end
redis.call('DEL', KEYS[2])
local prev = redis.call('GET', KEYS[4]) or ''
local h = redis.sha1hex(prev .. '\n' .. ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[3], 'prev', prev, 'hash', h)
redis.call('SET', KEYS[4], h)
redis.call('HSET', KEYS[1], 'state', 'DELIVERED', 'version', tostring(tonumber(ARGV[1]) + 1), 'data', ARGV[2])
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[5], ARGV[4])
else
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[4])
end
return sealed
