"""Reproduce Figure 2 of the AdaDim paper: the Gaussian simulation of
Section 3.1 / Appendix B.3, on CPU.

    python examples/figure2_gaussian_simulation.py --repetitions 100 --out-dir figures

R = make_blobs (1,000 samples, 5 centres), Z = PCA(R) with n = 2 or 10
components, closed-form Gaussian I(R; Z) (with a ridge relative to the data's
variance, since Z is a deterministic function of R; see
``keras_adadim.analysis.gaussian_simulation``). Writes
``OUT_DIR/figure2.png``, ``.svg`` and the numbers as ``figure2.json``.
"""

import argparse
import json
import os
import time

from keras_adadim.analysis import gaussian_simulation
from keras_adadim.analysis import plots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=100,
                        help="data sets per setting (paper: 100)")
    parser.add_argument("--out-dir", default="figures",
                        help="where figure2.{png,svg,json} go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ridge", type=float, default=1e-2)
    parser.add_argument("--ridge-mode", choices=("relative", "absolute"),
                        default="relative")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    result = gaussian_simulation(
        repetitions=args.repetitions, seed=args.seed, ridge=args.ridge,
        ridge_mode=args.ridge_mode)
    elapsed = time.perf_counter() - start

    os.makedirs(args.out_dir, exist_ok=True)
    _, paths = plots.figure2(result, os.path.join(args.out_dir, "figure2"))
    json_path = os.path.join(args.out_dir, "figure2.json")
    with open(json_path, "w") as f:
        json.dump(result.to_dict(), f)
    paths.append(json_path)

    print(f"\nsimulated in {elapsed:.1f} s")
    for name, panel in result.panels().items():
        print(f"panel {name}) n = {panel['n_components']}, I(R; Z) vs "
              f"{'m' if panel['sweep'] == 'features' else 'cluster std'} "
              f"(x = {panel['x'].tolist()})")
        for curve, mean, std in zip(panel["curves"], panel["mean"],
                                    panel["std"]):
            cells = " ".join(f"{m:6.2f}±{s:4.2f}" for m, s in zip(mean, std))
            print(f"  {panel['curve_parameter']} = {curve:g}: {cells}")
    print("wrote", ", ".join(paths))


if __name__ == "__main__":
    main()
