"""The report: a list of sections, each a function that writes its figures and returns Markdown.

:func:`build_report` loads the measurement files once into a :class:`ReportContext`, runs every
registered section builder in order and writes ``summary.md`` linking the figures. How to add a section
is described in :mod:`protran_tune.reporting`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from protran_tune.reporting.data import LoadedMeasurements, load_measurements


@dataclass(frozen=True)
class Figure:
    """A figure written by a section: ``path`` inside the report folder and a one-line caption."""

    path: Path
    caption: str


@dataclass
class Section:
    """What a section contributes: a title, Markdown text and figures (in order)."""

    title: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)


@dataclass
class ReportContext:
    """Everything a section may use.

    Attributes:
        files: the measurement files given (``--measurements``).
        out_dir: report folder (exists); write figures here.
        baseline: baseline platform label for normalised comparisons, or ``None`` (first dataset).
        options: free-form inputs of other sections (``--option KEY=VALUE``: a study name, a storage
            URL, a learning-curve file...).
    """

    files: list[Path]
    out_dir: Path
    baseline: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def measurements(self) -> LoadedMeasurements:
        """The files loaded into per-platform datasets (once, on first use)."""
        return load_measurements(self.files)

    def figure_path(self, name: str) -> Path:
        """``out_dir / name`` (a file name such as ``power_trace_cpu_ab12.png``)."""
        return self.out_dir / name


SectionBuilder = Callable[[ReportContext], "Section | None"]

#: Registered sections, in report order: ``(name, builder)``.
SECTIONS: list[tuple[str, SectionBuilder]] = []
_ORDER: dict[str, float] = {}


def register_section(name: str, builder: SectionBuilder, *, order: float = 100.0, replace: bool = False) -> None:
    """Add a section to every report; sections run and appear by ascending ``order``, then name.

    Orders in use (the paper's figure order): 10 what the numbers are (modelled, imprecise), 20 power
    traces (Figs. 2/3), 40 platform comparison
    (Fig. 4); suggested: 50 pairwise distances (Fig. 5), 60 learning curves (Figs. 6/7), 80 Pareto
    fronts. ``replace=True`` swaps the builder of an existing name; otherwise a duplicate name is a
    ``ValueError``.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"section name must be a non-empty string, got {name!r}")
    names = [n for n, _ in SECTIONS]
    if name in names and not replace:
        raise ValueError(f"report section {name!r} is already registered (sections: {names})")
    if name in names:
        del SECTIONS[names.index(name)]
    _ORDER[name] = float(order)
    SECTIONS.append((name, builder))
    SECTIONS.sort(key=lambda item: (_ORDER[item[0]], item[0]))


def section_names() -> list[str]:
    """Names of the registered sections (after discovering the modules of this package)."""
    discover_sections()
    return [n for n, _ in SECTIONS]


def discover_sections() -> None:
    """Import every module of :mod:`protran_tune.reporting` so their ``register_section`` calls run."""
    import protran_tune.reporting as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


@dataclass
class ReportResult:
    """Where the report went: ``summary`` (Markdown file) and the sections written."""

    summary: Path
    sections: list[tuple[str, Section]]

    @property
    def figures(self) -> list[Path]:
        return [f.path for _, s in self.sections for f in s.figures]


def build_report(
    files: Sequence[str | Path],
    out_dir: str | Path,
    *,
    baseline: str | None = None,
    sections: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> ReportResult:
    """Load ``files``, run the sections (all, or those named in ``sections``) and write ``summary.md``.

    Raises:
        ValueError: a malformed measurement file, an unknown ``baseline`` or section name.
        FileNotFoundError: a missing measurement file.
    """
    discover_sections()
    known = [n for n, _ in SECTIONS]
    if sections is not None:
        unknown = [s for s in sections if s not in known]
        if unknown:
            raise ValueError(f"unknown report section(s) {unknown}: known sections are {known}")
    out = Path(out_dir)
    ctx = ReportContext(files=[Path(f) for f in files], out_dir=out, baseline=baseline, options=dict(options or {}))
    loaded = ctx.measurements  # fail on bad input before writing anything
    if baseline is not None and baseline not in loaded.labels:
        raise ValueError(f"unknown baseline platform {baseline!r}: the measurement files hold {loaded.labels}")
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, Section]] = []
    for name, builder in SECTIONS:
        if sections is not None and name not in sections:
            continue
        section = builder(ctx)
        if section is not None:
            written.append((name, section))
    summary = out / "summary.md"
    summary.write_text(render_summary(ctx, written))
    return ReportResult(summary=summary, sections=written)


def render_summary(ctx: ReportContext, sections: Sequence[tuple[str, Section]]) -> str:
    """Markdown: the inputs, then each section's text and figures (relative links)."""
    loaded = ctx.measurements
    lines = ["# protran-tune report", "", "## Inputs", "",
             "| platform | device | file | format | architectures | source |", "|---|---|---|---|---|---|"]
    for d in loaded.datasets:
        lines.append(
            f"| {d.label} | {d.info.get('device', '')} | `{d.path.name}` | {d.kind} | {len(d.values)} | "
            f"{d.info.get('source', '')} |"
        )
    reasons: dict[str, list[str]] = {}
    for path, reason in loaded.skipped:
        reasons.setdefault(reason, []).append(f"`{path.name}`")
    for reason, names in reasons.items():
        lines += ["", f"Skipped ({reason}): {', '.join(names)}."]
    for _, section in sections:
        lines += ["", f"## {section.title}", ""]
        if section.text:
            lines += [section.text.rstrip(), ""]
        for fig in section.figures:
            rel = fig.path.relative_to(ctx.out_dir) if fig.path.is_relative_to(ctx.out_dir) else fig.path
            lines += [f"![{fig.caption}]({rel.as_posix()})", "", f"*{fig.caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"
