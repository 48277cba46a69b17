package redis

import goredis "github.com/redis/go-redis/v9"

// Presence lives in three hashes per channel and one set per node, changed only by these scripts
// so that every change is atomic and each transition is seen by exactly one node:
//
//	{p}:pm:{app}:{channel}  user → user_info      the channel's members cluster-wide
//	{p}:pc:{app}:{channel}  user → node count     how many nodes hold the user
//	{p}:pn:{app}:{channel}  node\0user → 1        which nodes hold the user
//	{p}:nm:{node}           app\0channel\0user    what a node holds, to undo when it dies
//
// A user joins cluster-wide when its node count goes 0 → 1 and leaves on 1 → 0 (§5.4: once per
// user however many sockets and nodes it has).

// joinScript: KEYS pn, pc, pm, nm; ARGV node\0user, user, user_info, app\0channel\0user.
// Returns 1 when the user is new in the channel cluster-wide.
var joinScript = goredis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then return 0 end
redis.call('SADD', KEYS[4], ARGV[4])
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  return 1
end
return 0
`)

// leaveScript: KEYS pn, pc, pm, nm; ARGV node\0user, user, app\0channel\0user.
// Returns 1 when no node holds the user in the channel any more, -1 when this node held no entry
// for it (pusher.ErrNotHeld).
var leaveScript = goredis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('SREM', KEYS[4], ARGV[3])
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
`)

// reapScript removes everything a node holds. KEYS nodes; ARGV prefix, node, keep ("1": the
// node itself rebuilding after a reconnect stays registered; otherwise it is dead and only the
// caller that unregisters it proceeds, so a dead node's members are announced gone once), mark
// ("1": note the entries announced gone in {p}:reaped:{node}, so that a node that was only cut
// off re-announces exactly those when it comes back, and nothing when it was declared dead
// before it had re-registered anything).
// Returns the app\0channel\0user entries whose user is now on no node. The keys it derives are
// not declared in KEYS, which is why Redis Cluster is not supported.
var reapScript = goredis.NewScript(`
local p, node = ARGV[1], ARGV[2]
if ARGV[3] ~= '1' then
  if redis.call('SREM', KEYS[1], node) == 0 then return {} end
  redis.call('DEL', p .. ':hb:' .. node)
  local conns = p .. ':conns'
  local suffix = '\0' .. node
  for _, f in ipairs(redis.call('HKEYS', conns)) do
    if string.sub(f, -#suffix) == suffix then redis.call('HDEL', conns, f) end
  end
end
local nm = p .. ':nm:' .. node
local gone = {}
for _, e in ipairs(redis.call('SMEMBERS', nm)) do
  local i = string.find(e, '\0', 1, true)
  local j = i and string.find(e, '\0', i + 1, true)
  if j then
    local app, ch, user = string.sub(e, 1, i - 1), string.sub(e, i + 1, j - 1), string.sub(e, j + 1)
    local base = app .. ':' .. ch
    if redis.call('HDEL', p .. ':pn:' .. base, node .. '\0' .. user) == 1 then
      if redis.call('HINCRBY', p .. ':pc:' .. base, user, -1) <= 0 then
        redis.call('HDEL', p .. ':pc:' .. base, user)
        redis.call('HDEL', p .. ':pm:' .. base, user)
        table.insert(gone, e)
      end
    end
  end
end
redis.call('DEL', nm)
if ARGV[3] ~= '1' and ARGV[4] == '1' and #gone > 0 then
  local mark = p .. ':reaped:' .. node
  for i = 1, #gone, 1000 do -- unpack is bounded by Lua's stack
    redis.call('SADD', mark, unpack(gone, i, math.min(i + 999, #gone)))
  end
  redis.call('EXPIRE', mark, 3600)
end
return gone
`)
