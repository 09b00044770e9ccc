"""frontier-moe-ep: mixture-of-experts layers with expert parallelism for Frontier."""

__version__ = "0.1.0"
