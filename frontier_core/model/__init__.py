"""What is served: the model catalog and its records (``catalog``: ModelSpec, HardwareSpec),
the attention and token-mixing kinds (``attention``) and number formats (``dtypes``).
Imports nothing of Frontier's above ``records`` and ``errors``."""
