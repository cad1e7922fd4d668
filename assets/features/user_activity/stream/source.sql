-- The upvote stream as typed rows: the columns of the upvote_events contract, computed columns and the
-- watermark. The platform reads the raw lines (a watched directory locally, a Kafka topic on a cluster),
-- checks each against the contract and dead-letters the ones it refuses.
CREATE TABLE upvote_events (
  event_id   STRING,
  user_id    BIGINT,
  post_id    BIGINT,
  event_time TIMESTAMP(6),
  rowtime AS CAST(event_time AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }})
