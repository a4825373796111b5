-- Record one acknowledged Slack delivery in the inbox, unless its delivery key
-- (trigger_id / event_id) was recorded within the dedupe window, and count it
-- against its sender's quota: the replay check, the quota and the durable
-- record are one atomic step, one round trip before the ack.
-- A repeat is not counted; a delivery past the quota is counted but neither
-- recorded nor remembered as seen.
-- KEYS: 1 dedupe key, 2 inbox stream, 3 quota counter (1 and 3 are keys of
--       the deployment's even when unused: on Redis Cluster every key must
--       hash to its slot)
-- ARGV: 1 dedupe ttl ms, 2 payload, 3 inbox maxlen, 4 dedupe (0|1),
--       5 quota limit (0: none), 6 quota window ms
-- Returns {1, 0} recorded, {0, 0} a repeat, {-1, ms until the window ends}
-- over the quota.
-- count_in_window is countInWindowLua's (limits.go), put before this file.
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 0}
end
local limit = tonumber(ARGV[5])
if limit > 0 then
  local n, left = count_in_window(KEYS[3], ARGV[6])
  if n > limit then
    return {-1, left}
  end
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'job', ARGV[2])
return {1, 0}
