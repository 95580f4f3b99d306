"""What the tests and the benchmarks share: real media made from photographs and recordings, a tiny
random-init CLIP, PostgreSQL and Milvus Lite servers, synthetic worlds for routing and sounds.
Not part of the `coldopen` package (nothing in it is shipped); importable from the repository root."""
