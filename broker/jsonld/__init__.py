"""JSON-LD @context handling: built-in core contexts, a bounded fetch cache and precomputed term maps."""
