-- The {{ source }} stream, with the columns of its contract (assets/sources/{{ source }}.yaml); the platform
-- fills in the connector from the active profile (a watched directory locally, a Kafka topic on a cluster).
CREATE TABLE {{ source }} (
{{ stream_columns }}
  rowtime AS CAST({{ event_time }} AS TIMESTAMP(3)),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND
) WITH ({{ connector }})
