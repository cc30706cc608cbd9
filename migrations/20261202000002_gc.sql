-- Garbage collection asks, for every blob it considers, whether any
-- repository has a manifest with that digest.
CREATE INDEX manifests_digest ON manifests (digest);
