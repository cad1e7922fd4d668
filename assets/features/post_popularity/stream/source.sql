-- The upvote and post streams as typed rows: the columns of their contracts, and watermarks trailing
-- each stream's newest event time by 5 s. The platform reads the raw lines of both and dead-letters the
-- ones their contracts refuse.
CREATE TABLE upvote_events (
  event_id   STRING,
  user_id    BIGINT,
  post_id    BIGINT,
  event_time TIMESTAMP(6),
  rowtime AS CAST(event_time AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }});

CREATE TABLE post_events (
  post_id      BIGINT,
  author_id    BIGINT,
  subreddit_id BIGINT,
  subreddit    STRING,
  title        STRING,
  event_time   TIMESTAMP(6),
  rowtime AS CAST(event_time AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }})
