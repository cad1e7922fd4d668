-- EDIT: lifetime {{ source }} events per {{ entity }}, from every partition up to {{ ds }}.
-- Output: the entity key `{{ entity_key }}` and one column per feature of feature.yaml, with its dtype.
SELECT
  {{ key_select }},
  COUNT(*) AS events_total,
  MAX({{ event_time }}) AS last_event_at
FROM {{ source_table }}
WHERE ds <= '{{ ds }}'
GROUP BY {{ key_column }}
