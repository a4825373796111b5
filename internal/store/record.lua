-- Record one acknowledged Slack delivery in the inbox, unless its delivery key
-- (trigger_id / event_id) was recorded within the dedupe window: the replay
-- check and the durable record are one atomic step, before the ack.
-- KEYS: 1 dedupe key (a key of the deployment's even when there is none:
--       on Redis Cluster every key must hash to its slot), 2 inbox stream
-- ARGV: 1 dedupe ttl ms, 2 payload, 3 inbox maxlen, 4 dedupe (0|1)
if ARGV[4] == '1' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
    return 0
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'job', ARGV[2])
return 1
