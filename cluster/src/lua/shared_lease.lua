-- Renews (ARGV[2] = ttl ms) or releases (ARGV[2] = 0) a lease, only while
-- this node's token holds it. KEYS: 1 lease. ARGV: 1 token, 2 ttl ms or 0.
-- Returns 1 when the lease was ours, 0 when it was lost or taken over.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
