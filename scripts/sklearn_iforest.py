"""scikit-learn's IsolationForest on the matrix `meterflow bench anomaly` wrote, for its side by
side comparison. Run by that command (with --python), not on its own.

Reads DIR/meta.json ({"datasets": [{"name", "rows", "features", "file"}], "trees",
"max_samples", "seed", "repeats"}) and each dataset's row-major little-endian float32 matrix;
fits and scores each on one thread (the meterflow side is one thread too), keeps the fastest of
`repeats` scoring runs, writes the anomaly scores (-score_samples, higher = more anomalous) to
DIR/<name>.sklearn.f64 and prints the timings as one JSON object.
"""

import json
import os
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest


def main(directory):
    meta = json.load(open(os.path.join(directory, "meta.json")))
    out = {"sklearn_version": sklearn.__version__, "datasets": {}}
    for ds in meta["datasets"]:
        x = np.fromfile(os.path.join(directory, ds["file"]), dtype="<f4")
        x = x.reshape(ds["rows"], ds["features"])
        started = time.perf_counter()
        forest = IsolationForest(
            n_estimators=meta["trees"],
            max_samples=meta["max_samples"],
            random_state=meta["seed"],
            n_jobs=1,
        ).fit(x)
        fit_s = time.perf_counter() - started
        best = float("inf")
        for _ in range(meta["repeats"]):
            started = time.perf_counter()
            scores = forest.score_samples(x)
            best = min(best, time.perf_counter() - started)
        (-scores).astype("<f8").tofile(os.path.join(directory, ds["name"] + ".sklearn.f64"))
        out["datasets"][ds["name"]] = {"fit_s": fit_s, "score_s": best}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
