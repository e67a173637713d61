"""One module per ``protran-tune`` sub-command (see :mod:`protran_tune.cli`)."""
