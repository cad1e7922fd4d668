-- The {{ source }} stream as typed rows: the columns of its contract (assets/sources/{{ source }}.yaml),
-- computed columns and the watermark. The platform reads the raw lines (a watched directory locally,
-- a Kafka topic on a cluster), checks each against the contract and dead-letters the ones it refuses.
CREATE TABLE {{ source }} (
{{ stream_columns }}
  rowtime AS CAST({{ event_time }} AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }})
