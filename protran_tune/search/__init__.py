"""Hardware-aware multi-objective NAS: hypervolume tools, pool benchmarks, the search methods and workflow.

* :mod:`.hypervolume`: fixed normalisation boxes, Pareto fronts, hypervolume, expected improvement;
* :mod:`.pool`: a recorded table as the search space (pool benchmarks, nearest-row rule);
* :mod:`.methods`: ours and Optuna's / BoTorch's samplers by name;
* :mod:`.evaluation`: objective providers from command-line specs;
* :mod:`.live`: ``run_search(SearchConfig(...))``, the search behind ``protran-tune search``;
* :mod:`.verification` and :mod:`.outputs`: checking the front for real, and what a search writes.
"""
