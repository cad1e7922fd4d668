-- The features from the window operator's aggregates per post (the view `windowed`), for the posts
-- created in the last 7 days, as batch.sql's population: hot_score is the Python UDF of udf.py, running
-- in Flink as in Spark. A post whose creation left the window is not written again (batch neither).
SELECT
  post_id,
  subreddit,
  upvotes_7d,
  upvotes_1d,
  hot_score(upvotes_7d, CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', created_at) AS BIGINT)) AS hot_score,
  upvotes_1d >= 5 AS is_trending,
  feature_ts
FROM windowed
WHERE created_at IS NOT NULL
