"""How long a batch takes: the execution predictor (``predictor``: a batch's operator calls,
priced by the predictor chain), serving engines' host time (``engines``) and speculative
decoding (``speculative``). Imports ``model`` and the contract, never the engine or the
application."""
