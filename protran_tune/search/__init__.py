"""Hardware-aware multi-objective NAS: hypervolume tools, pool benchmarks, the search methods and workflow.

* :mod:`.hypervolume`: fixed normalisation boxes, Pareto fronts, hypervolume, expected improvement;
* :mod:`.pool`: a recorded table as the search space (pool benchmarks, nearest-row rule);
* :mod:`.methods`: ours and Optuna's / BoTorch's samplers by name.
"""
