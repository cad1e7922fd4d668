"""The offline side: feature history as it was at any time (the batch tables, and what the streams served),
point-in-time training sets over it, and the FeatureStore facade that reads online and offline alike."""
