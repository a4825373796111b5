-- Compare-and-set one request transition, with its audit entry and side writes,
-- in one atomic step. Fails with CONFLICT when state or version moved on. The
-- audit entry is written first: if it cannot be, nothing else is (fail closed).
-- KEYS: 1 request hash, 2 sealed secret, 3 audit stream, 4 audit head,
--       5 mint stream, 6 deadline zset, 7 pending zset, 8 name reservation
-- ARGV: 1 expected state, 2 expected version, 3 new state, 4 request json,
--       5 audit json, 6 request id, 7 enqueue mint (0|1), 8 sealed secret ("" none),
--       9 secret ttl ms, 10 drop secret (0|1), 11 deadline ms ("" keep),
--       12 clear deadline (0|1), 13 audit maxlen, 14 release the name (0|1)
local st = redis.call('HGET', KEYS[1], 'state')
local ver = redis.call('HGET', KEYS[1], 'version')
if st ~= ARGV[1] or ver ~= ARGV[2] then
  return redis.error_reply('CONFLICT request moved on')
end
local prev = redis.call('GET', KEYS[4]) or ''
local h = redis.sha1hex(prev .. '\n' .. ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[13], '*', 'entry', ARGV[5], 'prev', prev, 'hash', h)
redis.call('SET', KEYS[4], h)
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'version', tostring(tonumber(ARGV[2]) + 1), 'data', ARGV[4])
if ARGV[3] ~= 'PENDING' then
  redis.call('ZREM', KEYS[7], ARGV[6])
end
if ARGV[7] == '1' then
  redis.call('XADD', KEYS[5], '*', 'id', ARGV[6])
end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[9])
end
if ARGV[10] == '1' then
  redis.call('DEL', KEYS[2])
end
if ARGV[12] == '1' then
  redis.call('ZREM', KEYS[6], ARGV[6])
end
if ARGV[11] ~= '' then
  redis.call('ZADD', KEYS[6], ARGV[11], ARGV[6])
end
if ARGV[14] == '1' and redis.call('GET', KEYS[8]) == ARGV[6] then
  redis.call('DEL', KEYS[8])
end
return 'OK'
