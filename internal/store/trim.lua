-- Retention: append a checkpoint entry that names the last entry removed, then
-- remove every entry older than the first one kept, in one atomic step, so
-- that verify tells a trim from a deletion. Nothing is written when no entry
-- is older than the first one kept (another replica trimmed first).
-- AUDITHEAD <head> and AUDITTURN as in apply.lua.
-- KEYS: 1 audit stream, 2 audit head, 3 audit genesis marker, 4 audit turn
-- ARGV: 1 stream id of the first entry kept, 2 checkpoint json,
--       3 expected audit head, 4 new audit head, 5 seq, 6 chain, 7 prev MAC, 8 MAC,
--       9 genesis marker ("" unless the entry starts a chain), 10 the caller's turn token ("" none)
-- Returns the checkpoint's stream id, or '' when there was nothing to trim.
if #redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1) == 0 then
  return ''
end
local turn = redis.call('GET', KEYS[4])
if turn and turn ~= ARGV[10] then
  return redis.error_reply('AUDITTURN another writer has the turn')
end
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[3] then
  if ARGV[10] ~= '' then
    redis.call('SET', KEYS[4], ARGV[10], 'NX', 'PX', 250)
  end
  return redis.error_reply('AUDITHEAD ' .. head)
end
local aid = redis.call('XADD', KEYS[1], '*', 'seq', ARGV[5], 'chain', ARGV[6], 'prev', ARGV[7], 'mac', ARGV[8], 'entry', ARGV[2])
redis.call('SET', KEYS[2], ARGV[4])
if turn then
  redis.call('DEL', KEYS[4])
end
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[3], ARGV[9], 'NX')
end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
return aid
