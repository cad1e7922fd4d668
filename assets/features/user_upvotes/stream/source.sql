-- Rendered from feature.yaml `aggregations:` by `featctl render`; do not edit.
-- The upvote_events contract as typed rows; the watermark trails the newest event time by 5 s.
CREATE TABLE upvote_events (
  `event_id` STRING,
  `user_id` BIGINT,
  `post_id` BIGINT,
  `event_time` TIMESTAMP(6),
  rowtime AS CAST(`event_time` AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }})
