"""Frontier prefill/decode disaggregation plugin (distribution frontier-pd-disagg)."""
