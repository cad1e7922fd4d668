"""The event log: the sample Reddit domain and the raw Hive tables it is kept in."""
