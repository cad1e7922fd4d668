-- One row per event of a post, into the platform's window operator (feature.yaml `aggregations:
-- aggregates`): its creation (subreddit, created_at) or an upvote it received (upvote_id).
SELECT post_id, event_time, subreddit, event_time AS created_at, CAST(NULL AS STRING) AS upvote_id
FROM post_events
UNION ALL
SELECT post_id, event_time, CAST(NULL AS STRING), CAST(NULL AS TIMESTAMP(6)), event_id
FROM upvote_events
