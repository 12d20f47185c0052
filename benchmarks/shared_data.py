"""Where the benchmarks find ``../shared/data`` (never an absolute path in the code): ``$GRISTMILL_SHARED_DATA``,
else the ``shared/data`` folder beside this repository's checkout."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("GRISTMILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
