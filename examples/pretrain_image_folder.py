"""Pre-train an encoder on your own images: one sub-folder per class (or
``train/`` and ``test/`` folders holding those), any mix of PNG/JPEG/BMP/GIF,
grayscale or RGB.

    python examples/pretrain_image_folder.py /path/to/images --image-size 64

Labels (the folder names) are used only by the evaluation and the online
probe; pre-training itself is self-supervised. Without ``train/``/``test/``
sub-folders, pass ``--test-split none`` (no evaluation) or point
``--test-folder`` at a held-out folder of the same classes. The baseline
preset's asymmetric augmentation with a ResNet-18 fits most small images;
``--backbone small_cnn`` runs on a CPU in minutes.
"""

import argparse

from keras_adadim import training


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--width-multiplier", type=float, default=1.0)
    p.add_argument("--augmentation", default="asymmetric",
                   choices=("asymmetric", "symmetric", "ressl"))
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=0.4,
                   help="LARS base learning rate (x batch/256)")
    p.add_argument("--test-split", default="test",
                   help="'test', 'val' or 'none' (no evaluation)")
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument("--alpha-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="runs/my-images")
    args = p.parse_args(argv)
    evaluate = args.test_split != "none"
    return training.pretrain(
        output=args.output,
        preset="baseline",
        dataset=args.folder,
        image_size=args.image_size,
        channels=args.channels,
        backbone=args.backbone,
        width_multiplier=args.width_multiplier,
        augmentation=args.augmentation,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_epochs=min(10, max(args.epochs // 10, 0)),
        alpha_every=args.alpha_every,
        test_split=args.test_split if evaluate else "test",
        eval="all" if evaluate else "none",
        monitor_every=max(1, args.epochs // 10) if evaluate else 0,
        probe_epochs=args.probe_epochs,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
