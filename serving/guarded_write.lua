-- Event-time-guarded write of one group version for many entity hashes, in one round trip.
-- KEYS: the entity hashes. ARGV[1]: event-time field; ARGV[2]: TTL seconds (0 = no expiry);
-- ARGV[3]: n, the number of feature fields; ARGV[4 .. 3+n]: the feature field names;
-- then for each key: its event time (integer microseconds) followed by its n encoded values.
-- A key's values land only if its event time is at least the stored one, so an older write never
-- replaces a newer value and replaying a partition changes nothing. A value of "\255" deletes the field
-- (null). Entity TTL: the key expires after the longest TTL of the groups written to it.
-- Returns the number of keys whose values landed.
local ts_field = ARGV[1]
local ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local applied = 0
local pos = 4 + n
for _, key in ipairs(KEYS) do
  local ts = ARGV[pos]
  local current = redis.call('HGET', key, ts_field)
  if (not current) or tonumber(current) <= tonumber(ts) then
    local remaining = redis.call('TTL', key)
    local set = {ts_field, ts}
    local del = {}
    for j = 1, n do
      local value = ARGV[pos + j]
      if value == '\255' then
        del[#del + 1] = ARGV[3 + j]
      else
        set[#set + 1] = ARGV[3 + j]
        set[#set + 1] = value
      end
    end
    redis.call('HSET', key, unpack(set))
    if #del > 0 then redis.call('HDEL', key, unpack(del)) end
    if ttl > 0 then
      if remaining == -2 or (remaining >= 0 and remaining < ttl) then redis.call('EXPIRE', key, ttl) end
    elseif remaining >= 0 then
      redis.call('PERSIST', key)
    end
    applied = applied + 1
  end
  pos = pos + 1 + n
end
return applied
