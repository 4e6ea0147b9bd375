"""A tiny family for testing and benchmarking the sweep engine without physics.

Its "loss" after step k is ``(x - target)^2 / (1 + k) + noise``: known good and bad configs,
controllable speed (``sleep_s`` per step) and controllable failures (``fail``: ``raise``,
``nan``, ``exit`` (``os._exit``), ``kill`` (SIGKILL), ``config``, ``once`` (first attempt only), or
``none``; at ``fail_at``). ``stop_file``: a trial ends (a normal last report) at the first step
at which that file exists, so a test decides when a sweep ends instead of racing a clock;
``gate_file``: a trial waits at step ``gate_at`` until that file exists, so a test can act on a
sweep that cannot end before it is let go.
"""
