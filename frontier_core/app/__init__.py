"""The application: the ``frontier`` command (``cli``), the Python API (``api``, its typed
``summary``), many runs at once (``runner``, ``sweep``, ``plan``, ``validate``,
``calibrate``, ``benchrows``) and writing results (``metrics``, ``outdir``). It imports
the engine, the execution model, the workload and the model; nothing below imports it."""
