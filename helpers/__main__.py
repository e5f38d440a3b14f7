"""The workbook's command line: `python -m helpers <command>` (see `python -m helpers --help`)."""

from __future__ import annotations

import sys

from helpers.cli import main

if __name__ == "__main__":
    sys.exit(main())
