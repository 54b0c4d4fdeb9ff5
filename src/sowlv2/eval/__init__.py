"""Evaluation: a synthetic video world with exact ground truth, also written in the DAVIS 2017 layout
(``world``), the DAVIS 2017 scores and our own tracking measures (``metrics``) and the ``sowlv2 world`` /
``sowlv2 eval`` commands (``cli``)."""
