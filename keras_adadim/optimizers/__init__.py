"""Optimizers and schedules of the paper's pre-training settings (Table 7).

* ``LARS`` (baseline setting) -- ``keras_adadim/optimizers/lars.py``.
* ``SGDW`` / ``AdamW``: Keras' SGD and AdamW whose decoupled weight decay
  skips biases and normalisation parameters (rank <= 1 variables).
* ``WarmupCosine``, ``step_decay`` -- ``keras_adadim/optimizers/schedules.py``.
* ``make_optimizer``: one call from the paper's hyper-parameters (base
  learning rate, batch size, epochs, warm-up) to a ready optimizer.

All classes are registered for ``.keras`` serialisation under the package
``keras_adadim``, so a model compiled with them saves and loads with its
optimizer state once ``keras_adadim.optimizers`` has been imported.
"""

import warnings

import keras

from keras_adadim.optimizers.lars import LARS
from keras_adadim.optimizers.lars import is_bias_or_norm
from keras_adadim.optimizers.schedules import WarmupCosine
from keras_adadim.optimizers.schedules import step_decay

OPTIMIZER_NAMES = ("lars", "sgd", "adamw")


class _SkipBiasAndNormDecay:
    """Keras' decoupled weight decay, except for variables of rank <= 1
    (biases, normalisation scale/offset) when ``exclude_bias_and_norm``."""

    def _use_weight_decay(self, variable):
        if self.exclude_bias_and_norm and is_bias_or_norm(variable):
            return False
        return super()._use_weight_decay(variable)

    def get_config(self):
        config = super().get_config()
        config["exclude_bias_and_norm"] = self.exclude_bias_and_norm
        return config


@keras.saving.register_keras_serializable(package="keras_adadim")
class SGDW(_SkipBiasAndNormDecay, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose weight decay skips biases and norms.

    Keras' ``weight_decay`` is decoupled: before each update every decayed
    variable is shrunk by ``w -= lr * weight_decay * w`` (the current
    learning rate). With ``exclude_bias_and_norm=True`` variables of rank
    <= 1 (biases, BatchNorm/LayerNorm scale and offset) are not decayed, the
    usual practice for SSL pre-training; ``exclude_from_weight_decay(...)``
    still works for further exclusions.

    Note: PyTorch's SGD (used by the paper's expanded setting via ReSSL) adds
    ``wd * w`` to the gradient *before* momentum, which at steady state
    decays about ``1 / (1 - momentum)`` times (10x at 0.9) more per step than
    this decoupled form with the same coefficient.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
        weight_decay=None,
        exclude_bias_and_norm=True,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)


@keras.saving.register_keras_serializable(package="keras_adadim")
class AdamW(_SkipBiasAndNormDecay, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` whose weight decay skips biases and norms.

    Same exclusion rule as ``SGDW`` (rank <= 1 variables are not decayed
    when ``exclude_bias_and_norm=True``).
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        exclude_bias_and_norm=True,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)


def scaled_learning_rate(base_learning_rate, batch_size, scale_by_batch=True):
    """``base * batch_size / 256`` (the linear scaling rule) or ``base``."""
    if scale_by_batch:
        return float(base_learning_rate) * int(batch_size) / 256.0
    return float(base_learning_rate)


def make_optimizer(
    name,
    base_learning_rate,
    batch_size,
    epochs,
    steps_per_epoch,
    weight_decay=1e-4,
    warmup_epochs=10,
    momentum=0.9,
    scale_by_batch=True,
    final_learning_rate=0.0,
    warmup_start=0.0,
    **kwargs,
):
    """An optimizer with a per-step warm-up + cosine schedule.

    The learning rate peaks at ``base_learning_rate * batch_size / 256`` when
    ``scale_by_batch`` (the linear scaling rule of Goyal et al. 2017; solo-learn
    multiplies its configured ``lr`` by ``batch_size * devices / 256``,
    so the paper's "base LR 0.4 at batch 256" is used as given), else at
    ``base_learning_rate``. It rises linearly from ``warmup_start`` over
    ``warmup_epochs * steps_per_epoch`` steps, then follows a cosine to
    ``final_learning_rate`` at ``epochs * steps_per_epoch`` steps
    (``WarmupCosine``). A warm-up longer than the run is shortened to the run,
    with a warning.

    Args:
        name: ``"lars"`` (``LARS``: ``weight_decay`` is LARS' coupled L2 term,
            ``momentum`` its heavy-ball momentum, biases/norms excluded from
            trust ratio and decay), ``"sgd"`` (``SGDW``: Keras SGD with
            momentum and decoupled decay, biases/norms not decayed) or
            ``"adamw"`` (``AdamW``: Keras AdamW, biases/norms not decayed;
            ``momentum`` is unused, pass ``beta_1`` instead).
        base_learning_rate, batch_size, epochs, steps_per_epoch: see above.
        weight_decay: decay coefficient (Table 7: 1e-4).
        warmup_epochs: warm-up length in epochs (Table 7: 10 for LARS, 2 for
            SGD). May be fractional.
        momentum: momentum of LARS and SGD.
        scale_by_batch: apply the ``batch_size / 256`` scaling.
        final_learning_rate, warmup_start: end and start values of the
            schedule.
        **kwargs: forwarded to the optimizer's constructor (e.g.
            ``trust_coefficient``, ``clip_lr`` for LARS; ``nesterov`` for SGD;
            ``beta_1`` for AdamW; ``clipnorm``, ``name``, ... for all).

    Returns:
        A ``keras.optimizers.Optimizer`` whose ``learning_rate`` is a
        ``WarmupCosine`` schedule.
    """
    key = str(name).lower()
    if key not in OPTIMIZER_NAMES:
        raise ValueError(
            f"Unknown optimizer {name!r}; choose one of "
            f"{', '.join(repr(n) for n in OPTIMIZER_NAMES)}."
        )
    for arg, value in (
        ("batch_size", batch_size),
        ("epochs", epochs),
        ("steps_per_epoch", steps_per_epoch),
    ):
        if int(value) <= 0:
            raise ValueError(f"`{arg}` must be a positive integer; got {value}.")
    if warmup_epochs < 0:
        raise ValueError(f"`warmup_epochs` must be >= 0; got {warmup_epochs}.")
    total_steps = int(epochs) * int(steps_per_epoch)
    warmup_steps = int(round(warmup_epochs * int(steps_per_epoch)))
    if warmup_steps > total_steps:
        warnings.warn(
            f"warmup_epochs={warmup_epochs} is longer than the run "
            f"(epochs={epochs}); warming up over the whole run instead.",
            stacklevel=2,
        )
        warmup_steps = total_steps
    schedule = WarmupCosine(
        scaled_learning_rate(base_learning_rate, batch_size, scale_by_batch),
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        final_learning_rate=final_learning_rate,
        warmup_start=warmup_start,
    )
    if key == "lars":
        return LARS(
            schedule, momentum=momentum, weight_decay=weight_decay, **kwargs
        )
    if key == "sgd":
        return SGDW(
            schedule, momentum=momentum, weight_decay=weight_decay, **kwargs
        )
    return AdamW(schedule, weight_decay=weight_decay, **kwargs)


__all__ = [
    "LARS",
    "OPTIMIZER_NAMES",
    "SGDW",
    "AdamW",
    "WarmupCosine",
    "make_optimizer",
    "scaled_learning_rate",
    "step_decay",
]
