-- The upvote stream, with the columns of the upvote_events contract; the platform fills in the connector
-- from the active profile (a watched directory of JSON-lines files locally, a Kafka topic on a cluster).
CREATE TABLE upvote_events (
  event_id   STRING,
  user_id    BIGINT,
  post_id    BIGINT,
  event_time TIMESTAMP(6),
  rowtime AS CAST(event_time AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }})
