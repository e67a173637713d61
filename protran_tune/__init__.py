"""protran-tune: hardware-aware transformer architecture search (ProTran / EdgeTran).

Sub-packages: ``space`` (design spaces, architectures), ``models`` (FlexiBERT 2.0 in PyTorch),
``platforms`` (latency / energy / peak-power measurement), ``surrogates``, ``samplers``,
``objectives``, ``tracking`` (MLflow) and ``workflows``. Importing the package imports nothing heavy.
"""

__version__ = "0.1.0"
