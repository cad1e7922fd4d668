-- EDIT: lifetime {{ source }} events per {{ entity }}, updated on every event (the same values as batch.sql).
-- feature_ts is the event time the values hold as of: the {{ entity }}'s latest event.
SELECT
  {{ key_select }},
  COUNT(*) AS events_total,
  MAX({{ event_time }}) AS last_event_at,
  MAX({{ event_time }}) AS feature_ts
FROM {{ source }}
GROUP BY {{ key_column }}
