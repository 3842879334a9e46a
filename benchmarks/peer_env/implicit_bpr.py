"""implicit's BPR on a CSR user x item matrix, run inside the peer environment (no fbrec import here).

python benchmarks/peer_env/implicit_bpr.py IN.npz OUT.npz FACTORS LR REG ITERATIONS SEED
Writes user_factors, item_factors and fit_seconds (the fit call alone, wall clock) to OUT.npz.
"""

import sys
import time

import numpy as np
import scipy.sparse as sp
from implicit.cpu.bpr import BayesianPersonalizedRanking


def main() -> None:
    src, out, factors, lr, reg, iterations, seed = sys.argv[1:8]
    user_items = sp.load_npz(src).tocsr()
    model = BayesianPersonalizedRanking(factors=int(factors), learning_rate=float(lr), regularization=float(reg),
                                        iterations=int(iterations), random_state=int(seed), num_threads=0)
    start = time.perf_counter()
    model.fit(user_items, show_progress=False)
    seconds = time.perf_counter() - start
    np.savez(out, user_factors=np.asarray(model.user_factors), item_factors=np.asarray(model.item_factors),
             fit_seconds=seconds)


if __name__ == "__main__":
    main()
