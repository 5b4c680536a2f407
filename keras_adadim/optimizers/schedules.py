"""Learning-rate schedules of the paper's pre-training and linear evaluation.

* ``WarmupCosine``: linear warm-up then cosine annealing, per optimizer step
  (Table 7: 10 warm-up epochs for the LARS baseline, 2 for the SGD expanded
  setting; solo-learn's ``LinearWarmupCosineAnnealingLR`` stepped per
  iteration).
* ``step_decay``: the ImageNet linear-evaluation schedule (x0.1 at epochs 60
  and 80) as a serialisable ``keras.optimizers.schedules.PiecewiseConstantDecay``.
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_adadim")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up followed by cosine annealing.

    With ``s`` the optimizer step (``optimizer.iterations``, 0 at the first
    update), ``W = warmup_steps``, ``T = total_steps``::

        lr(s) = warmup_start + (base - warmup_start) * s / W        s < W
        lr(s) = final + (base - final) * (1 + cos(pi * p)) / 2      s >= W,
                p = min((s - W) / max(T - W, 1), 1)

    so ``lr(W) = base`` and ``lr(s) = final`` for every ``s >= T``.
    (Lightning Bolts / solo-learn divide the warm-up by ``W - 1`` instead of
    ``W``, reaching ``base`` one step earlier; the difference is one step.)

    Args:
        base_learning_rate: peak learning rate, reached at the end of warm-up.
        total_steps: number of optimizer steps of the whole run (> 0).
        warmup_steps: linear warm-up length in steps, 0 <= W <= total_steps.
        final_learning_rate: value at and after ``total_steps``.
        warmup_start: value at step 0 when ``warmup_steps > 0``.
    """

    def __init__(
        self,
        base_learning_rate,
        total_steps,
        warmup_steps=0,
        final_learning_rate=0.0,
        warmup_start=0.0,
        name="WarmupCosine",
    ):
        super().__init__()
        total_steps, warmup_steps = int(total_steps), int(warmup_steps)
        if total_steps <= 0:
            raise ValueError(f"`total_steps` must be > 0; got {total_steps}.")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"`warmup_steps` must be in [0, total_steps={total_steps}]; "
                f"got {warmup_steps}."
            )
        self.base_learning_rate = float(base_learning_rate)
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_learning_rate = float(final_learning_rate)
        self.warmup_start = float(warmup_start)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        base, final = self.base_learning_rate, self.final_learning_rate
        w = float(self.warmup_steps)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip(ops.divide(ops.subtract(step, w), span), 0.0, 1.0)
        cosine = ops.add(
            final,
            ops.multiply(
                0.5 * (base - final), ops.add(1.0, ops.cos(ops.multiply(progress, math.pi)))
            ),
        )
        if self.warmup_steps == 0:
            return cosine
        warm = ops.add(
            self.warmup_start,
            ops.multiply(base - self.warmup_start, ops.divide(step, w)),
        )
        return ops.where(ops.less(step, w), warm, cosine)

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_learning_rate": self.final_learning_rate,
            "warmup_start": self.warmup_start,
            "name": self.name,
        }


def step_decay(base_learning_rate, steps_per_epoch, milestones=(60, 80), factor=0.1):
    """Multiply the learning rate by ``factor`` at each milestone epoch.

    The ImageNet linear-evaluation schedule (solo-learn ``scheduler: step``,
    ``lr_decay_steps: [60, 80]``, PyTorch's ``MultiStepLR``): epochs
    ``[0, 60)`` use ``base``, ``[60, 80)`` use ``base * factor``, ``[80, ...)``
    use ``base * factor**2``. Returned as Keras' serialisable
    ``PiecewiseConstantDecay`` on optimizer steps; its boundaries are
    inclusive (``lr = values[i]`` while ``step <= boundaries[i]``), hence the
    ``- 1``.
    """
    steps_per_epoch = int(steps_per_epoch)
    if steps_per_epoch <= 0:
        raise ValueError(f"`steps_per_epoch` must be > 0; got {steps_per_epoch}.")
    milestones = [int(m) for m in milestones]
    if not milestones or milestones != sorted(set(milestones)) or milestones[0] <= 0:
        raise ValueError(
            "`milestones` must be strictly increasing positive epochs; got "
            f"{milestones}."
        )
    boundaries = [m * steps_per_epoch - 1 for m in milestones]
    values = [float(base_learning_rate) * factor**i for i in range(len(milestones) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
