-- Reveal: take and delete the sealed secret of an ISSUED request and mark it
-- DELIVERED, atomically, so that two clicks on two replicas reveal once. Every
-- check comes before the first write and the audit entry is written first
-- (fail closed: a secret is never deleted without its entry); AUDITHEAD <head>
-- and AUDITTURN as in apply.lua.
-- KEYS: 1 request hash, 2 sealed secret, 3 audit stream, 4 audit head, 5 deadline zset,
--       6 audit genesis marker, 7 audit turn
-- ARGV: 1 expected version, 2 request json, 3 audit json, 4 request id,
--       5 next deadline ms ("" none), 6 expected audit head ("" none), 7 new audit head,
--       8 seq, 9 chain, 10 prev MAC, 11 MAC, 12 genesis marker ("" unless the entry starts a chain),
--       13 the caller's turn token ("" none)
-- Returns {sealed secret, the audit entry's stream id}.
local st = redis.call('HGET', KEYS[1], 'state')
local ver = redis.call('HGET', KEYS[1], 'version')
if st ~= 'ISSUED' or ver ~= ARGV[1] then
  return redis.error_reply('CONFLICT request moved on')
end
local sealed = redis.call('GET', KEYS[2])
if not sealed then
  return redis.error_reply('GONE no sealed secret')
end
local turn = redis.call('GET', KEYS[7])
if turn and turn ~= ARGV[13] then
  return redis.error_reply('AUDITTURN another writer has the turn')
end
local head = redis.call('GET', KEYS[4]) or ''
if head ~= ARGV[6] then
  if ARGV[13] ~= '' then
    redis.call('SET', KEYS[7], ARGV[13], 'NX', 'PX', 250)
  end
  return redis.error_reply('AUDITHEAD ' .. head)
end
local aid = redis.call('XADD', KEYS[3], '*', 'seq', ARGV[8], 'chain', ARGV[9], 'prev', ARGV[10], 'mac', ARGV[11], 'entry', ARGV[3])
redis.call('SET', KEYS[4], ARGV[7])
if turn then
  redis.call('DEL', KEYS[7])
end
if ARGV[12] ~= '' then
  redis.call('SET', KEYS[6], ARGV[12], 'NX')
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'DELIVERED', 'version', tostring(tonumber(ARGV[1]) + 1), 'data', ARGV[2])
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[5], ARGV[4])
else
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
end
return {sealed, aid}
