-- Posts created in the 7 days ending with {{ ds }}, with their upvotes in that window.
SELECT
  p.post_id,
  p.subreddit                                                        AS subreddit,
  COUNT(u.event_id)                                                  AS upvotes_7d,
  SUM(CASE WHEN u.ds = '{{ ds }}' THEN 1 ELSE 0 END)                 AS upvotes_1d,
  hot_score(COUNT(u.event_id), unix_seconds(p.event_time))           AS hot_score,
  SUM(CASE WHEN u.ds = '{{ ds }}' THEN 1 ELSE 0 END) >= 5            AS is_trending
FROM raw.post_events p
LEFT JOIN raw.upvote_events u
  ON u.post_id = p.post_id
 AND u.ds BETWEEN date_format(date_sub('{{ ds }}', 6), 'yyyy-MM-dd') AND '{{ ds }}'
WHERE p.ds BETWEEN date_format(date_sub('{{ ds }}', 6), 'yyyy-MM-dd') AND '{{ ds }}'
GROUP BY p.post_id, p.subreddit, p.event_time
