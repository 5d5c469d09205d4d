"""Run every ``bench/bench_*.py`` in its own process, one after another.

``python -m bench`` runs them all; ``python -m bench NAME ...`` runs some
(``import`` runs ``bench_import``). Options after the names go to each bench
named: ``python -m bench engine --repeat 3 --skip-memory``. Each prints its
own figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    args = sys.argv[1:]
    first_option = next((i for i, arg in enumerate(args) if arg.startswith("-")), len(args))
    names, options = args[:first_option], args[first_option:]
    if options and not names:
        print("options need the names of the benches they are for", file=sys.stderr)
        return 2
    names = names or sorted(p.stem[len("bench_") :] for p in here.glob("bench_*.py"))
    failed = 0
    for name in names:
        print(f"\n=== bench {name}", flush=True)
        failed |= subprocess.call([sys.executable, "-m", f"bench.bench_{name}", *options])
    return failed


if __name__ == "__main__":
    sys.exit(main())
