"""Run every ``bench/bench_*.py`` in its own process, one after another.

``python -m bench`` runs them all; ``python -m bench NAME ...`` runs some
(``import`` runs ``bench_import``). Each prints its own figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    names = sys.argv[1:] or sorted(p.stem[len("bench_") :] for p in here.glob("bench_*.py"))
    failed = 0
    for name in names:
        print(f"\n=== bench {name}", flush=True)
        failed |= subprocess.call([sys.executable, "-m", f"bench.bench_{name}"])
    return failed


if __name__ == "__main__":
    sys.exit(main())
