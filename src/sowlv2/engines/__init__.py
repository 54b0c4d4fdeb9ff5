"""Engines that run many inputs: the local one is ``sowlv2.runner.run_local``; ``ray_engine`` spreads
the inputs over Ray workers (``--engine ray``)."""
