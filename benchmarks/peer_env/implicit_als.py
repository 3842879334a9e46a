"""implicit's ALS on a CSR user x item matrix for a list of settings, run inside the peer environment (no fbrec).

python benchmarks/peer_env/implicit_als.py IN.npz SETTINGS.json OUT_DIR SEED
SETTINGS.json: a list of {factors, regularization, alpha, iterations}; writes OUT_DIR/<n>.npz with user_factors,
item_factors and fit_seconds (the fit call alone, wall clock) for the n-th setting.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares


def main() -> None:
    src, settings, out, seed = sys.argv[1:5]
    user_items = sp.load_npz(src).tocsr().astype(np.float32)
    for n, s in enumerate(json.loads(Path(settings).read_text())):
        model = AlternatingLeastSquares(factors=int(s["factors"]), regularization=float(s["regularization"]),
                                        alpha=float(s["alpha"]), iterations=int(s["iterations"]),
                                        random_state=int(seed), num_threads=0)
        start = time.perf_counter()
        model.fit(user_items, show_progress=False)
        seconds = time.perf_counter() - start
        np.savez(Path(out) / f"{n}.npz", user_factors=np.asarray(model.user_factors),
                 item_factors=np.asarray(model.item_factors), fit_seconds=seconds)


if __name__ == "__main__":
    main()
