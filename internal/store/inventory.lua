-- Record one scope's unmanaged credentials as of a successful list at BTP:
-- what the list no longer has is forgotten, what is new is remembered (at
-- most ARGV 3 per scope) and returned, so that it is reported once; what was
-- remembered keeps its first sighting. The scope's count goes into the
-- counts hash. Both keys get the TTL ARGV 1, so that a scope no sweep lists
-- any more is forgotten on its own.
-- KEYS: 1 the scope's hash (name → json), 2 counts hash (scope → count)
-- ARGV: 1 ttl ms, 2 scope, 3 most names remembered, 4 count,
--       5.. pairs of name, json
-- Returns the names remembered now that were not before.
local present = {}
for i = 5, #ARGV, 2 do
  present[ARGV[i]] = true
end
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not present[name] then
    redis.call('HDEL', KEYS[1], name)
  end
end
local have = redis.call('HLEN', KEYS[1])
local most = tonumber(ARGV[3])
local fresh = {}
for i = 5, #ARGV, 2 do
  if have >= most then
    break
  end
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    have = have + 1
    fresh[#fresh + 1] = ARGV[i]
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
if have > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return fresh
