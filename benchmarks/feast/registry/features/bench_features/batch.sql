SELECT user_id, clicks_7d, views_30d, rank, ctr_7d, score, spend_30d, country, segment, is_active, last_seen_at
FROM bench.rows
WHERE ds = '{{ ds }}'
