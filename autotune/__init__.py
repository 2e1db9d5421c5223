"""autotune: tune an Ableton Live master chain (Glue Compressor -> Limiter) to a loudness target."""

__version__ = "0.1.0"
