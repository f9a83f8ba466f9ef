"""Run a command and report its peak RSS and CPU time: `python measure.py OUT.json -- CMD...`.

A fresh process per measurement: RUSAGE_CHILDREN's ru_maxrss is the largest child ever waited
for, so measuring from the long-lived pytest process would report the biggest earlier child.
Here the only child is CMD. stdin, stdout and stderr are passed through.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> None:
    out, sep, *cmd = sys.argv[1:]
    assert sep == "--", sys.argv
    start = time.monotonic()
    proc = subprocess.run(cmd, check=False)
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "rc": proc.returncode,
                "maxrss_kb": usage.ru_maxrss,
                "cpu": usage.ru_utime + usage.ru_stime,
                "wall": wall,
            },
            fh,
        )


if __name__ == "__main__":
    main()
