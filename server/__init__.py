"""ColdOpen server: settings, storage, index, ingest pipeline and the gRPC front end."""
