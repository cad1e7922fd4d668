-- Event-time-guarded write of one group version for many entity hashes, in one round trip.
-- KEYS: the entity hashes, then (when ARGV[4+n] is 1) the group version's history stream.
-- ARGV[1]: event-time field; ARGV[2]: TTL seconds (0 = no expiry);
-- ARGV[3]: n, the number of feature fields; ARGV[4 .. 3+n]: the feature field names;
-- ARGV[4+n]: 1 to append every landed row to the history stream (the stream injection), else 0;
-- ARGV[5+n]: how far ahead of Redis's clock an event time may be, in microseconds (-1: no limit);
-- then for each key: its event time (integer microseconds) followed by its n encoded values.
-- Clock guard: a row dated further ahead of Redis's own clock than ARGV[5+n] is refused and counted (a
-- producer's wrong clock must not stamp a value "as of" the future, where the event-time guard would then
-- refuse every real write until that time comes).
-- A key's values land only if its event time is at least the stored one, so an older write never
-- replaces a newer value and replaying a partition changes nothing. A value of "\255" deletes the field
-- (null). Entity TTL: the key expires after the longest TTL of the groups written to it (EXPIRE ... GT,
-- Redis 7.0 or newer). A key the group wrote before costs three commands (HGET, HSET, EXPIRE GT or
-- PERSIST), a new one four (EXISTS besides).
-- A landed row appended to the history stream is exactly what Redis then holds, in the same atomic step,
-- so the offline history of streamed values (streaming/history.py) is the online store's own record.
-- Returns {rows that landed, rows the clock guard refused}.
local ts_field = ARGV[1]
local ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local history = ARGV[4 + n] == '1'
local max_ahead = tonumber(ARGV[5 + n])
local latest = nil
if max_ahead >= 0 then
  local now = redis.call('TIME')
  latest = tonumber(now[1]) * 1000000 + tonumber(now[2]) + max_ahead
end
local entities = history and #KEYS - 1 or #KEYS
local applied, refused = 0, 0
local pos = 6 + n
-- HSET's arguments for a row without nulls, the field names filled in once: a row only sets the values
local row = {ts_field, false}
for j = 1, n do
  row[2 * j + 1] = ARGV[3 + j]
end
for i = 1, entities do
  local key = KEYS[i]
  local ts = ARGV[pos]
  local current = nil
  if latest and tonumber(ts) > latest then
    refused = refused + 1
  else
    current = redis.call('HGET', key, ts_field) or false
  end
  if current ~= nil and ((not current) or tonumber(current) <= tonumber(ts)) then
    -- a key this group never wrote may be new; one it wrote exists (its event-time field is there)
    local created = (not current) and redis.call('EXISTS', key) == 0
    row[2] = ts
    local nulls = false
    for j = 1, n do
      local value = ARGV[pos + j]
      if value == '\255' then
        nulls = true
        break
      end
      row[2 * j + 2] = value
    end
    if nulls then  -- set the values there are, delete the null ones
      local set, del = {ts_field, ts}, {}
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
    else
      redis.call('HSET', key, unpack(row))
    end
    if ttl > 0 and created then
      redis.call('EXPIRE', key, ttl)
    elseif ttl > 0 then  -- GT: only a later expiry; a key without one (a group with no TTL wrote it) keeps none
      redis.call('EXPIRE', key, ttl, 'GT')
    elseif not created then  -- a group with no TTL: the key never expires
      redis.call('PERSIST', key)
    end
    if history then
      local entry = {'key', key, 'ts', ts}
      for j = 1, n do
        entry[#entry + 1] = ARGV[3 + j]
        entry[#entry + 1] = ARGV[pos + j]
      end
      redis.call('XADD', KEYS[#KEYS], '*', unpack(entry))
    end
    applied = applied + 1
  end
  pos = pos + 1 + n
end
return {applied, refused}
