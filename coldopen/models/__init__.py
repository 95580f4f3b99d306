"""Model wrappers. Each family has a class with ``load(settings)`` and batched methods that
return plain dataclasses; nothing here knows about gRPC."""
