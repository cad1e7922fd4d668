-- One row per upvote with the subreddit of the post it went to, into the platform's window operator
-- (feature.yaml `aggregations: aggregates`). A regular join, as batch.sql's: every post stays in state
-- (an upvote may go to a post of any age), an upvote for an hour (STATE_TTL), so an upvote read before its
-- post still joins when the post arrives.
SELECT /*+ STATE_TTL('u' = '1h') */
  p.subreddit_id,
  u.event_time,
  u.user_id,
  u.post_id,
  p.subreddit
FROM upvote_events AS u
JOIN post_events AS p ON u.post_id = p.post_id
