"""``python -m protran_tune.platforms.worker ARGS``: ``protran-tune measure ARGS`` for machines without
the console script (edge boards, GPU machines with the working tree on ``PYTHONPATH``)."""

from __future__ import annotations

import sys

from protran_tune.commands.measure import main

if __name__ == "__main__":
    sys.exit(main())
