"""Pre-train on CIFAR-100 with the paper's baseline preset (Table 7/9).

On a GPU, the paper's setting (ResNet-50, LARS, batch 256, 400 epochs,
asymmetric augmentation, alpha every 20 epochs):

    python examples/pretrain_cifar100.py --output runs/cifar100-baseline

The expanded setting (momentum encoder, SGD, ReSSL augmentation, 512-d
projector with BatchNorm): add ``--preset expanded``. A CPU-sized trial
(minutes): ``--backbone resnet18 --width-multiplier 0.25 --epochs 2
--batch-size 64 --train-split "train[:2048]" --test-split "test[:512]"``.

CIFAR-100 comes through tensorflow-datasets: it is downloaded once into
``--data-dir`` (default ``~/tensorflow_datasets``); without network, prepare
it elsewhere and copy that directory. Killed runs resume when the same
command is run again.
"""

import argparse

from keras_adadim import training


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="baseline",
                   choices=("baseline", "expanded", "simclr", "vicreg"))
    p.add_argument("--backbone", help="default: the preset's (resnet50)")
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--epochs", type=int, help="default: the preset's (400)")
    p.add_argument("--batch-size", type=int, help="default 256")
    p.add_argument("--train-split", default="train",
                   help='e.g. "train[:2048]" for a CPU-sized trial')
    p.add_argument("--test-split", default="test")
    p.add_argument("--probe-epochs", type=int)
    p.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="runs/cifar100-baseline")
    args = p.parse_args(argv)
    return training.pretrain(
        output=args.output,
        preset=args.preset,
        dataset="cifar100",
        backbone=args.backbone,
        width_multiplier=args.width_multiplier,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_split=args.train_split,
        test_split=args.test_split,
        probe_epochs=args.probe_epochs,
        data_dir=args.data_dir,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
