-- The features from the window operator's aggregates per subreddit (the view `windowed`), as batch.sql
-- derives them: upvotes per upvoted post is null when the day had none.
SELECT
  subreddit_id,
  name,
  upvotes_1d,
  distinct_upvoters_1d,
  upvoted_posts_1d,
  CAST(upvotes_1d AS DOUBLE) / NULLIF(upvoted_posts_1d, 0) AS upvotes_per_post_1d,
  feature_ts
FROM windowed
