-- Upvotes on {{ ds }} per subreddit: a join of the upvote stream with all posts created so far.
SELECT
  p.subreddit_id,
  MAX(p.subreddit)                                  AS name,
  COUNT(*)                                          AS upvotes_1d,
  COUNT(DISTINCT u.user_id)                         AS distinct_upvoters_1d,
  COUNT(DISTINCT u.post_id)                         AS upvoted_posts_1d,
  COUNT(*) / COUNT(DISTINCT u.post_id)              AS upvotes_per_post_1d
FROM raw.upvote_events u
JOIN raw.post_events p ON u.post_id = p.post_id
WHERE u.ds = '{{ ds }}' AND p.ds <= '{{ ds }}'
GROUP BY p.subreddit_id
