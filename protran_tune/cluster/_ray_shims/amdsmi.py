"""Stand-in for a broken ``amdsmi`` install (put first on the path by :mod:`protran_tune.cluster.raycompat`).

``amdsmi`` 7.x raises ``KeyError`` at import when ``libamd_smi.so`` is absent, which crashes ``import
ray`` (Ray only tolerates ``ImportError``). This module turns that into the ``ImportError`` Ray and Zeus
expect on machines without AMD GPUs.
"""

raise ImportError("amdsmi is unusable here: libamd_smi.so is not installed (no AMD GPU driver)")
