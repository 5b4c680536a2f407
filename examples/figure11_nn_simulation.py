"""Reproduce Figure 11 of the AdaDim paper: I(R; Z) over training of a small
MLP trained with SimCLR or VICReg on Gaussian blobs (Appendix B.4).

    python examples/figure11_nn_simulation.py --epochs 300 --out-dir runs/figure11

The paper trains 1,000 epochs; 300 show the same shape in a few minutes on
2 CPU cores.
"""

import argparse
import json
import os

from keras_adadim.analysis import nn_simulation
from keras_adadim.analysis.plots import figure11


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--out-dir", default="runs/figure11")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = nn_simulation(epochs=args.epochs, seed=args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    _, paths = figure11(result, os.path.join(args.out_dir, "figure11"))
    with open(os.path.join(args.out_dir, "figure11.json"), "w") as f:
        json.dump(result, f)
    for method in ("simclr", "vicreg"):
        v = result[method]
        print(f"{method}: I(R;Z) epoch 1 = {v[0]:.3f}, final = {v[-1]:.3f}")
    print("wrote", ", ".join(paths))
    return result


if __name__ == "__main__":
    main()
