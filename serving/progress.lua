-- Progress of a streaming injector, kept beside the features so the paired Dagster sensor can read it.
-- KEYS[1]: the progress hash. ARGV[1]: rows written now; ARGV[2]: rows that landed; ARGV[3]: wall-clock
-- time of this write (ms); ARGV[4]: the newest event time in the batch (microseconds); ARGV[5]: rows the
-- guarded write's clock guard refused (dated too far ahead of Redis's clock).
redis.call('HINCRBY', KEYS[1], 'rows_written', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'rows_landed', ARGV[2])
redis.call('HSET', KEYS[1], 'last_write_ms', ARGV[3])
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[1], 'rows_refused_ahead', ARGV[5]) end
local newest = tonumber(redis.call('HGET', KEYS[1], 'max_event_time') or '0')
if tonumber(ARGV[4]) > newest then redis.call('HSET', KEYS[1], 'max_event_time', ARGV[4]) end
return 1
