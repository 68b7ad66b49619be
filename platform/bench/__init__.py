"""Benchmarks: each prints ratios measured in one run, and names the machine it ran on.

- `engine_speed`: `vda bench inference`, the single engine; runs and prints the next two
- `engine_variants`: speed levers, compile, fp32/bf16/fp16, ONNX Runtime, encoder cache
- `engine_memory`: peak RSS streaming 500 vs 10,000 frames (the memory bound)
- `engine_timing`: the harness: one engine over a synthetic clip, warmed up, timed
- `bulk_throughput`: `vda bench infer` (and `--long`): the bulk job vs the bare model,
  split long videos vs the ideal makespan
- `bulk_overhead`: `vda bench infer --many` (cost per short video); `plan_scale`: `vda bench plan`
- `bulk_stages`: `vda bench infer --stages`: CPU per frame of each stage around the model
- `train_data_wait`: `vda bench train`: share of step time waiting for data from S3
- `loopback`, `machine`: an S3 server on loopback; the one-line machine description
"""
