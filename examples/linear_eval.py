"""Linear evaluation of a saved encoder: the paper's offline linear probe
(Adam 1e-2 -> 1e-6, weight decay 5e-6) on frozen features, weighted kNN
(k = 20, cosine) and the few-label probe, top-1 and top-5.

    python examples/linear_eval.py runs/cifar100-baseline
    python examples/linear_eval.py adadim-smallcnn-digits --dataset digits
    python examples/linear_eval.py my_encoder.keras --dataset cifar10

The source is a run directory (its dataset and image size are used), a
``.keras`` encoder, a zoo name or an ``hf://org/repo`` URI. The same as
``adadim evaluate``.
"""

import argparse

from keras_adadim import evaluate_run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("--dataset", help="default: the run's dataset")
    p.add_argument("--data-dir")
    p.add_argument("--image-size", type=int)
    p.add_argument("--probe-epochs", type=int, default=100,
                   help="the paper uses 500 for small datasets")
    p.add_argument("--few-labels", type=int, default=10)
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="where evaluation.json goes")
    args = p.parse_args(argv)
    return evaluate_run.evaluate(
        args.source, dataset=args.dataset, data_dir=args.data_dir,
        image_size=args.image_size, eval="all",
        few_labels=args.few_labels, probe_epochs=args.probe_epochs,
        knn_k=args.knn_k, seed=args.seed, output=args.output,
    )


if __name__ == "__main__":
    main()
