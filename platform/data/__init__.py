"""Video depth data: raw-layout readers, the synthetic generator, clip shards, Ray Data pipeline."""
