"""Online serving: the Redis layout, the guarded batched writer, and GetFeatures reads."""
