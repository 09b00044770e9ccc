"""frontier-af-pingpong: attention/FFN disaggregation with ping-pong pipelining."""

__version__ = "0.1.0"
