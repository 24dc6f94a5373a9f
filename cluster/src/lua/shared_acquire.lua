-- A node missed an entry in its own tiers: the shared copy if there is one,
-- else the lease to fetch it from the origin, else who holds the lease.
-- KEYS: 1 entry hash, 2 lease. ARGV: 1 token, 2 lease ttl ms.
-- Returns {'hit', field, value, ...}, {'acquired'} or {'held', pttl}.
local e = redis.call('HGETALL', KEYS[1])
if #e > 0 then
  table.insert(e, 1, 'hit')
  return e
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'acquired'}
end
return {'held', redis.call('PTTL', KEYS[2])}
