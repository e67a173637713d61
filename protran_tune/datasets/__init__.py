"""Datasets: the generic table format, the shipped tables (by name) and the ProTran / NAS-Bench-BERT readers.

* :mod:`.table`: :class:`Table` (architectures with named metrics and their sources), ``read_table``,
  ``write_table``;
* :mod:`.registry`: ``load_dataset(name_or_path)``, ``list_datasets()``; shipped: ``nas-bench-bert``,
  ``protran:<device>``, ``protran-nasbench:h200``, ``protran-nasbench:cpu`` (licence notices beside
  their files under ``files/``);
* :mod:`.protran`: the ProTran measurement files (``load_recorded``, the replay pool);
* :mod:`.nasbench`: NAS-Bench-BERT configurations <-> :class:`~protran_tune.space.Architecture`.

Needs numpy and PyYAML only.
"""

from protran_tune.datasets.protran import PERFORMANCE_KEYS, RecordedDataset, load_recorded, recorded_files
from protran_tune.datasets.registry import (
    DATASETS,
    dataset_info,
    dataset_path,
    list_datasets,
    load_dataset,
    protran_measurement_files,
)
from protran_tune.datasets.table import Table, TableError, read_table, table_from_rows, write_table

__all__ = [
    "Table", "TableError", "read_table", "write_table", "table_from_rows", "DATASETS", "list_datasets",
    "load_dataset", "dataset_info", "dataset_path", "protran_measurement_files", "RecordedDataset",
    "load_recorded", "recorded_files", "PERFORMANCE_KEYS",
]
