"""Evaluation: a synthetic video world with exact ground truth (``world``), DAVIS-style scores
(``metrics``) and the ``sowlv2 world`` / ``sowlv2 eval`` commands (``cli``)."""
