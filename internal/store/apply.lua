-- Compare-and-set one request transition, with its audit entry and side writes,
-- in one atomic step. Fails with CONFLICT when state or version moved on, and
-- with AUDITHEAD <head> when the audit chain's head is not the one the caller
-- MAC'd the entry against (another transition got there first: the caller
-- MACs again against the new head and retries), and with AUDITTURN while
-- another writer holds the turn (see audit.go: a writer that lost the race
-- for the head claims the next write, so that no replica starves). Every check comes before the
-- first write, and the audit entry is written first: if it cannot be, nothing
-- else is (fail closed).
-- A transition that ends the request (ARGV 14 set) keeps nothing of it but
-- the record, and that only for the retention: its hash gets that TTL, and its
-- deadline, sealed secret and name reservation go whatever the effects say, so
-- that no index a live request needs points at a record that will expire. The
-- requester's list of ids gets its TTL again (ARGV 15), to outlive the record.
-- KEYS: 1 request hash, 2 sealed secret, 3 audit stream, 4 audit head,
--       5 mint stream, 6 deadline zset, 7 pending zset, 8 name reservation,
--       9 audit genesis marker, 10 audit turn, 11 requester's zset,
--       12 the requester's break-glass lock (freed when its holder ends),
--       13 requester's live credentials zset
-- ARGV: 1 expected state, 2 expected version, 3 new state, 4 request json,
--       5 audit json, 6 request id, 7 enqueue mint (0|1), 8 sealed secret ("" none),
--       9 secret ttl ms, 10 drop secret (0|1), 11 deadline ms ("" keep),
--       12 clear deadline (0|1), 13 release the name (0|1),
--       14 retention ms of the record if the new state ends the request ("" it does not),
--       15 ttl ms of the requester's zset,
--       16 expected audit head ("" none), 17 new audit head, 18 seq, 19 chain,
--       20 prev MAC, 21 MAC, 22 genesis marker ("" unless the entry starts a chain),
--       23 the caller's turn token ("" none)
-- Returns the audit entry's stream id.
local st = redis.call('HGET', KEYS[1], 'state')
local ver = redis.call('HGET', KEYS[1], 'version')
if st ~= ARGV[1] or ver ~= ARGV[2] then
  return redis.error_reply('CONFLICT request moved on')
end
local turn = redis.call('GET', KEYS[10])
if turn and turn ~= ARGV[23] then
  return redis.error_reply('AUDITTURN another writer has the turn')
end
local head = redis.call('GET', KEYS[4]) or ''
if head ~= ARGV[16] then
  if ARGV[23] ~= '' then
    redis.call('SET', KEYS[10], ARGV[23], 'NX', 'PX', 250)
  end
  return redis.error_reply('AUDITHEAD ' .. head)
end
local aid = redis.call('XADD', KEYS[3], '*', 'seq', ARGV[18], 'chain', ARGV[19], 'prev', ARGV[20], 'mac', ARGV[21], 'entry', ARGV[5])
redis.call('SET', KEYS[4], ARGV[17])
if turn then
  redis.call('DEL', KEYS[10])
end
if ARGV[22] ~= '' then
  redis.call('SET', KEYS[9], ARGV[22], 'NX')
end
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
if (ARGV[13] == '1' or ARGV[14] ~= '') and redis.call('GET', KEYS[8]) == ARGV[6] then
  redis.call('DEL', KEYS[8])
end
-- The requester's live credentials (the Home tab pages through them): in from
-- issue, by when it was issued, until the request ends. Its TTL outlives any
-- credential alive now, and is set again whenever one of them moves.
if ARGV[3] == 'ISSUED' or ARGV[3] == 'DELIVERED' then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[13], 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[6])
  redis.call('PEXPIRE', KEYS[13], ARGV[15])
end
if ARGV[14] ~= '' then
  if redis.call('GET', KEYS[12]) == ARGV[6] then
    redis.call('DEL', KEYS[12])
  end
  redis.call('ZREM', KEYS[13], ARGV[6])
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[6], ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[14])
  redis.call('PEXPIRE', KEYS[11], ARGV[15])
end
return aid
