-- Append one audit entry that changes no request: a refused attempt, an admin
-- lookup or delete, a policy load, a replica start. The same chain, turn and
-- head compare-and-set as the transitions (AUDITHEAD <head> and AUDITTURN as in
-- apply.lua).
-- KEYS: 1 audit stream, 2 audit head, 3 audit genesis marker, 4 audit turn
-- ARGV: 1 audit json, 2 expected audit head ("" none), 3 new audit head, 4 seq,
--       5 chain, 6 prev MAC, 7 MAC, 8 genesis marker ("" unless the entry starts a chain),
--       9 the caller's turn token ("" none)
-- Returns the entry's stream id.
local turn = redis.call('GET', KEYS[4])
if turn and turn ~= ARGV[9] then
  return redis.error_reply('AUDITTURN another writer has the turn')
end
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[2] then
  if ARGV[9] ~= '' then
    redis.call('SET', KEYS[4], ARGV[9], 'NX', 'PX', 250)
  end
  return redis.error_reply('AUDITHEAD ' .. head)
end
local aid = redis.call('XADD', KEYS[1], '*', 'seq', ARGV[4], 'chain', ARGV[5], 'prev', ARGV[6], 'mac', ARGV[7], 'entry', ARGV[1])
redis.call('SET', KEYS[2], ARGV[3])
if turn then
  redis.call('DEL', KEYS[4])
end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[3], ARGV[8], 'NX')
end
return aid
