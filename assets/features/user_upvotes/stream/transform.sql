-- Rendered from feature.yaml `aggregations:` by `featctl render`; do not edit.
-- One row per event into the platform's window operator (streaming/windows.py). Per user_id it keeps
-- partial aggregates in 1h tiles and emits every feature on each event and whenever a tile
-- leaves a window, as of the newest event time:
--   upvotes_7d: COUNT(*) over 7d
--   distinct_items_7d: COUNT(DISTINCT post_id) over 7d
--   upvotes_1d: COUNT(*) over 1d
--   last_upvote_at: MAX(event_time) over 7d
SELECT `user_id`, rowtime, `event_time`, `post_id`
FROM upvote_events
