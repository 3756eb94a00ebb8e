"""Print `make mutation`'s outcome per module, and every surviving mutant (run from the checkout's root).

python tests/mutation_summary.py PATTERN...   (the mutant name patterns make mutation ran)
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from collections import Counter, defaultdict


def main(patterns: list[str]) -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name or not any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            continue
        module = name.split(".x")[0].rstrip("ǁ")
        counts[module][status] += 1
        if status not in ("killed", "caught by type check"):
            survivors[module].append(f"{name}: {status}")
    for module in sorted(counts):
        row = ", ".join(f"{status} {number}" for status, number in sorted(counts[module].items()))
        print(f"{module}: {sum(counts[module].values())} mutants: {row}")
    for module in sorted(survivors):
        print(f"\n{module}, not killed:")
        for entry in sorted(survivors[module]):
            print(f"    {entry}")
    print("\n`.venv/bin/mutmut show NAME` shows a mutant's diff.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
