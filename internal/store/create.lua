-- Store a new request with its first audit entry, its deadline and its indexes,
-- and reserve its scope and name for it: a name is held by one request at a time.
-- A request is new as PENDING, or (adopted: an existing credential an admin
-- put under management) as DELIVERED, which never enters the pending set.
-- Every check comes before the first write and the audit entry is written
-- first (fail closed); AUDITHEAD <head> and AUDITTURN as in apply.lua.
-- The requester's list of ids is bounded: it keeps the newest ARGV 8 ids and
-- every pending one (the pending limit counts them), and gets its TTL again.
-- A break-glass (ARGV 17 = '1') is stored APPROVED: it is not pending, its
-- mint job is queued in the same step, and it takes the requester's
-- break-glass lock, which only one live break-glass holds at a time
-- (BREAKGLASS <holder> when another does; apply.lua frees it when the
-- request ends).
-- KEYS: 1 request hash, 2 audit stream, 3 audit head, 4 deadline zset,
--       5 pending zset, 6 requester's zset, 7 name reservation, 8 audit genesis marker,
--       9 audit turn, 10 mint stream, 11 the requester's break-glass lock
-- ARGV: 1 state, 2 request json, 3 audit json, 4 request id, 5 deadline ms,
--       6 created ms, 7 ttl ms of the requester's zset, 8 most ids it keeps,
--       9 expected audit head ("" none), 10 new audit head, 11 seq,
--       12 chain, 13 prev MAC, 14 MAC, 15 genesis marker ("" unless the entry starts a chain),
--       16 the caller's turn token ("" none), 17 break-glass ('1' or '0')
-- Returns the audit entry's stream id.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS request id in use')
end
local holder = redis.call('GET', KEYS[7])
if holder and holder ~= ARGV[4] then
  return redis.error_reply('HELD ' .. holder)
end
local bg = ARGV[17] == '1'
if bg then
  local other = redis.call('GET', KEYS[11])
  if other and other ~= ARGV[4] then
    return redis.error_reply('BREAKGLASS ' .. other)
  end
end
local turn = redis.call('GET', KEYS[9])
if turn and turn ~= ARGV[16] then
  return redis.error_reply('AUDITTURN another writer has the turn')
end
local head = redis.call('GET', KEYS[3]) or ''
if head ~= ARGV[9] then
  if ARGV[16] ~= '' then
    redis.call('SET', KEYS[9], ARGV[16], 'NX', 'PX', 250)
  end
  return redis.error_reply('AUDITHEAD ' .. head)
end
local aid = redis.call('XADD', KEYS[2], '*', 'seq', ARGV[11], 'chain', ARGV[12], 'prev', ARGV[13], 'mac', ARGV[14], 'entry', ARGV[3])
redis.call('SET', KEYS[3], ARGV[10])
if turn then
  redis.call('DEL', KEYS[9])
end
if ARGV[15] ~= '' then
  redis.call('SET', KEYS[8], ARGV[15], 'NX')
end
redis.call('SET', KEYS[7], ARGV[4])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'version', '1', 'data', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
if bg then
  redis.call('SET', KEYS[11], ARGV[4])
  redis.call('XADD', KEYS[10], '*', 'id', ARGV[4])
end
if ARGV[1] == 'PENDING' then
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[4])
end
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[4])
-- At most 20 of the oldest ids per create: a person with thousands of pending
-- requests (no limit set) must not make every create walk them all.
local over = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[8])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[6], 0, math.min(over, 20) - 1)) do
    if not redis.call('ZSCORE', KEYS[5], old) then
      redis.call('ZREM', KEYS[6], old)
    end
  end
end
redis.call('PEXPIRE', KEYS[6], ARGV[7])
return aid
