"""Figures and a Markdown summary from measurement files (``protran-tune report``).

Built in:

* :mod:`~protran_tune.reporting.power` - power trace over time of a measurement, idle line, protocol
  phases shaded, peak marked, source named (the paper's Figs. 2/3): :func:`plot_power_trace`.
* :mod:`~protran_tune.reporting.compare` - latency, energy and peak power of each platform relative to
  a baseline platform, geometric mean over the architectures common to all files (Fig. 4):
  :func:`compare_platforms`, :func:`plot_comparison`.
* :mod:`~protran_tune.reporting.data` - reads our JSON-lines records and the original ProTran
  ``results_*.json`` files into per-platform datasets: :func:`load_measurements`.
* :mod:`~protran_tune.reporting.quality` - what the numbers are: modelled or replayed energy and power,
  missing quantities, latencies that missed their precision target: :func:`measurement_notes`.
* :mod:`~protran_tune.reporting.report` - the section list and :func:`build_report`.

Adding a section (learning curves, Figs. 6/7; pairwise distances, Fig. 5; Pareto fronts)
------------------------------------------------------------------------------------------
1. Add a module to this package, e.g. ``protran_tune/reporting/learning.py``. Keep its top-level
   imports light (import matplotlib inside functions; use the Agg backend).
2. Write one function per figure that takes plain data and a path and returns the path, e.g.
   ``plot_learning_curves(curves, path) -> Path``, so benchmarks can call it directly.
3. Write a section builder ``(ctx: ReportContext) -> Section | None`` that gathers its inputs from
   ``ctx.measurements`` (datasets per platform), ``ctx.files`` or ``ctx.options`` (``--option KEY=VALUE``
   on the command line, e.g. ``study=...``), writes figures to ``ctx.figure_path(name)`` and returns
   ``Section(title, text_markdown, [Figure(path, caption), ...])``; return ``None`` when its inputs are
   absent (the report then leaves it out).
4. At the end of the module register it::

       from protran_tune.reporting.report import register_section
       register_section("learning-curves", learning_section, order=60)

   ``order`` places it (10 what the numbers are, 20 power traces, 40 platform comparison, 50 pairwise
   distances, 60 learning curves, 80 Pareto fronts). :func:`build_report` imports every module of this package, so nothing else
   needs to change; ``protran-tune report --section NAME`` runs a subset.

Example::

    from protran_tune.reporting import build_report
    result = build_report(["a100.json", "cpu.jsonl"], "report/", baseline="gpu_a100")
    print(result.summary, result.figures)
"""

from protran_tune.reporting.compare import Comparison, compare_platforms, geometric_mean, plot_comparison
from protran_tune.reporting.data import (
    METRICS,
    LoadedMeasurements,
    PlatformData,
    load_measurement_file,
    load_measurements,
)
from protran_tune.reporting.power import plot_power_trace, select_traces
from protran_tune.reporting.quality import measurement_notes
from protran_tune.reporting.report import (
    SECTIONS,
    Figure,
    ReportContext,
    ReportResult,
    Section,
    build_report,
    register_section,
    section_names,
)

__all__ = [
    "METRICS", "PlatformData", "LoadedMeasurements", "load_measurement_file", "load_measurements",
    "Comparison", "compare_platforms", "geometric_mean", "plot_comparison", "plot_power_trace",
    "select_traces", "measurement_notes", "SECTIONS", "Figure", "Section", "ReportContext", "ReportResult",
    "build_report", "register_section", "section_names",
]
