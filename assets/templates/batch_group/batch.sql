-- EDIT: {{ source }} events per {{ entity }} over the 7 days ending with {{ ds }} (one daily partition).
-- Output: the entity key `{{ entity_key }}` and one column per feature of feature.yaml, with its dtype.
SELECT
  {{ key_select }},
  COUNT(*) AS events_7d,
  SUM(CASE WHEN ds = '{{ ds }}' THEN 1 ELSE 0 END) AS events_1d,
  MAX({{ event_time }}) AS last_event_at
FROM {{ source_table }}
WHERE ds BETWEEN date_format(date_sub('{{ ds }}', 6), 'yyyy-MM-dd') AND '{{ ds }}'
GROUP BY {{ key_column }}
