"""Fine-tune a pre-trained encoder with a few labels per class, and compare
with a linear probe on the frozen encoder and with the same network trained
from a random initialisation.

    python examples/finetune_few_labels.py adadim-smallcnn-digits \
        --dataset digits --labels-per-class 10

The source is a run directory, a ``.keras`` encoder, a zoo name or an
``hf://`` URI. Fine-tuning trains encoder + linear head end to end with
AdamW on the labelled subset only (the head first, then everything at a
10x smaller learning rate), with light flip/translation augmentation for
images larger than 16 px.
"""

import argparse

import keras
import numpy as np

from keras_adadim import data as data_lib
from keras_adadim import evaluate_run
from keras_adadim.evaluation import linear_probe
from keras_adadim.evaluation import per_class_subset


def _classifier(encoder, num_classes, image_shape, augment):
    inputs = keras.Input(image_shape)
    x = inputs
    if augment:
        x = keras.layers.RandomFlip("horizontal")(x)
        x = keras.layers.RandomTranslation(0.1, 0.1)(x)
    x = encoder(x)
    outputs = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, outputs)


def _compile(model, lr):
    model.compile(
        optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def finetune(encoder, xtr, ytr, xte, yte, num_classes, epochs, lr, seed,
             pretrained=True):
    """Test accuracy after training encoder + head on (xtr, ytr).

    A pre-trained encoder first stays frozen while the new head fits
    (a third of the epochs), then everything trains at lr / 10 so the
    pre-trained features are adjusted, not overwritten. A random-init
    encoder trains end to end at lr from the start.
    """
    keras.utils.set_random_seed(seed)
    model = _classifier(encoder, num_classes, xtr.shape[1:],
                        augment=xtr.shape[1] > 16)
    batch = int(min(64, max(8, len(xtr) // 8)))
    if pretrained:
        encoder.trainable = False
        _compile(model, lr)
        model.fit(xtr, ytr, batch_size=batch, epochs=max(1, epochs // 3),
                  verbose=0)
        encoder.trainable = True
        _compile(model, lr / 10)
    else:
        _compile(model, lr)
    model.fit(xtr, ytr, batch_size=batch, epochs=epochs, verbose=0)
    logits = model.predict(xte, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == yte))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--labels-per-class", type=int, default=10)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    encoder, config, _ = evaluate_run._load_source(args.source)
    channels = encoder.input_shape[-1]
    size = (config or {}).get("image_size") or encoder.input_shape[1]
    train = data_lib.load_dataset(args.dataset, split="train",
                                  data_dir=args.data_dir, channels=channels)
    test = data_lib.load_dataset(args.dataset, split="test",
                                 data_dir=args.data_dir, channels=channels)
    xtr, ytr = data_lib.to_numpy(train, image_size=size)
    xte, yte = data_lib.to_numpy(test, image_size=size)
    few = per_class_subset(ytr, args.labels_per_class, seed=args.seed)
    num_classes = int(max(ytr.max(), yte.max())) + 1

    feats = lambda enc, x: np.asarray(  # noqa: E731
        enc.predict(x, batch_size=256, verbose=0)).reshape(len(x), -1)
    probe = linear_probe(feats(encoder, xtr[few]), ytr[few],
                         feats(encoder, xte), yte,
                         epochs=args.probe_epochs, seed=args.seed)
    random_init = keras.models.clone_model(encoder)
    results = {
        "linear probe (frozen, pre-trained)": probe,
        "fine-tuned (pre-trained)": finetune(
            encoder, xtr[few], ytr[few], xte, yte, num_classes,
            args.epochs, args.learning_rate, args.seed),
        "trained from random init": finetune(
            random_init, xtr[few], ytr[few], xte, yte, num_classes,
            args.epochs, args.learning_rate, args.seed, pretrained=False),
    }
    print(f"\n{args.labels_per_class} labels per class ({len(few)} images), "
          f"top-1 on the {len(xte)} test images of {args.dataset}:")
    for name, acc in results.items():
        print(f"  {name:<38}{acc:.3f}")
    return results


if __name__ == "__main__":
    main()
