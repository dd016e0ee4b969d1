#!/usr/bin/env python3
"""Writes a held-out copy of an SGSC file: each meter's last N days (default 28) cut off.

Forecasting choices are made on this copy (scored on the 28 days before the cut) and only then
confirmed on the real last days (docs/forecasting.md). Standard library only; write the copy
outside the repository, e.g.

    python3 scripts/forecast_holdout.py ../shared/data/sgsc50_halfhourly.csv.gz /tmp/sgsc_holdout.csv.gz
"""

import csv
import gzip
import sys
from datetime import datetime, timedelta


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    days = int(sys.argv[3]) if len(sys.argv) > 3 else 28
    last: dict[str, datetime] = {}
    with gzip.open(src, "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            t = datetime.fromisoformat(row[1])
            if row[0] not in last or t > last[row[0]]:
                last[row[0]] = t
    cut = {m: t - timedelta(days=days) for m, t in last.items()}
    # Rows are copied as they are (line endings included).
    with gzip.open(src, "rt", newline="") as f, gzip.open(dst, "wt", newline="") as out:
        out.write(f.readline())
        for line in f:
            row = next(csv.reader([line]))
            if datetime.fromisoformat(row[1]) <= cut[row[0]]:
                out.write(line)


if __name__ == "__main__":
    main()
