-- Checks, then mutations, all or nothing. Values (increments included) are computed by
-- the caller from a snapshot; 'implied' checks pin the versions that snapshot saw, so a
-- concurrent write makes the caller retry instead of writing a stale sum.
-- KEYS: 1 lex index, 2 expiry index, 3 version counter, 4.. item hashes.
-- ARGV: nchecks, {key position, wanted version ('' = absent), 'u' (user) | 'i' (implied)}*,
--       nmutations, {'set' | 'del', key position, member, value, expiry mode
--       ('n' none | 'r' ttl ms from now | 'a' absolute ms), expiry number}*.
-- Returns {1, {version | ''}*, {expires_at_ms}*}, or {0, check index, actual version}
-- for a failed user check, or {2, check index, actual} for a failed implied one.
local p = 0
local function a() p = p + 1; return ARGV[p] end
for i = 1, tonumber(a()) do                                 -- 1. checks, read-only
  local k, want, kind = KEYS[tonumber(a())], a(), a()
  local cur = redis.call('HGET', k, 'ver') or ''
  if cur ~= want then
    if kind == 'i' then return {2, i, cur} end
    return {0, i, cur}
  end
end
local muts, nset = {}, 0
for i = 1, tonumber(a()) do                                 -- 2. read every argument first
  local m = {op = a(), key = KEYS[tonumber(a())], member = a(), value = a(), mode = a(), num = a()}
  if m.op == 'set' then nset = nset + 1 elseif m.op ~= 'del' then return redis.error_reply('ERR bad op') end
  muts[i] = m
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = 0
if nset > 0 then base = redis.call('INCRBY', KEYS[3], nset) - nset end
local vers, exps, n = {}, {}, 0
for i, m in ipairs(muts) do                                 -- 3. write
  if m.op == 'del' then
    redis.call('UNLINK', m.key)
    redis.call('ZREM', KEYS[1], m.member)
    redis.call('ZREM', KEYS[2], m.member)
    vers[i], exps[i] = '', '0'
  else
    n = n + 1
    local ver = string.format('%d', base + n)
    local at = 0
    if m.mode == 'r' then at = now + tonumber(m.num) elseif m.mode == 'a' then at = tonumber(m.num) end
    local ats = string.format('%d', at)
    redis.call('HSET', m.key, 'v', m.value, 'ver', ver, 'exp', ats)
    redis.call('ZADD', KEYS[1], 0, m.member)
    if at > 0 then
      redis.call('PEXPIREAT', m.key, ats)
      redis.call('ZADD', KEYS[2], ats, m.member)
    else
      redis.call('PERSIST', m.key)
      redis.call('ZREM', KEYS[2], m.member)
    end
    vers[i], exps[i] = ver, ats
  end
end
return {1, vers, exps}
