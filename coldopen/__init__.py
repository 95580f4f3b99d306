"""ColdOpen: multimodal content understanding for cold-start video routing.

The package's folders are its layers; each imports only from the ones before it (README: Layout):

  domain   errors and the dataclasses that cross layers; imports nothing heavy
  config   the one frozen settings object and its checks
  ops      logs, metrics, garbage-collection policy
  models   CLIP, Whisper, the text embedder, the audio fingerprint
  engine   media probing, decode workers, batchers, the ingest pipeline
  storage  the SQL catalog, vector indexes, snapshots, migrations
  sounds   sound identity: postings, segments, voting, sharing
  ranking  scores, the performs-well pool, routing, the cold-start loop
  app      the service, split by use case
  api      the gRPC server, interceptors, protobuf conversion, the Python client
  cli      the `coldopen` command
  v1       the generated gRPC stubs (proto/coldopen/v1/coldopen.proto)
"""

__version__ = "0.2.0"
