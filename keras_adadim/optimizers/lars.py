"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017).

The paper's baseline setting (Table 7 of the AdaDim paper, SPEC.md "Settings")
pre-trains with LARS, as solo-learn does. This is a Keras 3 optimizer written
with ``keras.ops`` only, so it runs unchanged on TensorFlow, JAX and PyTorch,
inside ``model.fit`` (XLA-compiled or not) and in custom loops.

Update rule, for a model variable ``w`` with gradient ``g`` at step t (the
semantics of solo-learn's ``solo/utils/lars.py``, itself taken from Lightning
Bolts; momentum in the PyTorch convention, learning rate outside the buffer)::

    if w is adapted and ||w|| > 0 and ||g|| > 0:
        r  = eta * ||w|| / (||g|| + wd * ||w|| + eps)       # trust ratio
        r  = min(r / lr, 1)                    # only when clip_lr=True
        g  = r * (g + wd * w)                  # L2 decay, then scaling
    v  = momentum * v + g                      # v starts at 0
    w  = w - lr * v                            # nesterov: w - lr*(g + momentum*v)

* **Adapted variables.** With ``exclude_bias_and_norm=True`` (the default,
  solo-learn's ``exclude_bias_n_norm_lars``, as in SimCLR/BYOL/Barlow Twins)
  every variable of rank <= 1 -- biases and normalisation scales/offsets --
  skips both the trust ratio and the weight decay and gets plain
  SGD + momentum. Variables whose path matches one of the regular expressions
  in ``exclude_from_adaptation`` are treated the same way. Variables excluded
  with Keras' own ``optimizer.exclude_from_weight_decay(...)`` keep the trust
  ratio but get no decay (``wd = 0`` in the formula above).
* **Zero norms.** As in solo-learn, a variable whose weight norm or gradient
  norm is zero in a step (e.g. a zero-initialised kernel at step 1) gets the
  plain, unscaled and undecayed gradient in that step.
* **Clipping** (``clip_lr=True``, solo-learn's ``clip_lars_lr``): the local
  factor becomes ``min(r / lr, 1)``, so the effective step size of the
  variable is ``lr * min(r / lr, 1) = min(r, lr)``: LARS may shrink a layer's
  learning rate below the global one but never raise it above.
* **Weight decay** is LARS' own coupled L2 term (``g += wd * w`` before the
  trust ratio, whose denominator also carries ``wd * ||w||``). Keras' built-in
  decoupled decay (``Optimizer._apply_weight_decay``) is switched off for
  this class, so the decay is never applied twice. Note: the Barlow Twins
  reference implementation divides by ``||g + wd * w||`` instead of
  ``||g|| + wd * ||w||``; we follow solo-learn, which the paper used.
* **Trust coefficient** ``eta`` defaults to 0.02, the value of solo-learn's
  SSL configurations (``eta_lars: 0.02``); the original LARS paper and
  Lightning Bolts use 1e-3.
* **Momentum convention.** The buffer accumulates scaled gradients and the
  learning rate multiplies the buffer (PyTorch/solo-learn), unlike
  ``keras.optimizers.SGD`` (``v = momentum * v - lr * g``). The two agree for
  a constant learning rate and differ slightly while a schedule changes it.
"""

import re

import keras
from keras import ops


def is_bias_or_norm(variable):
    """True for variables of rank <= 1: biases and normalisation parameters."""
    return len(variable.shape) <= 1


def variable_path(variable):
    """The variable's path (``"dense/kernel"``), or its name if it has none."""
    return str(getattr(variable, "path", None) or variable.name)


@keras.saving.register_keras_serializable(package="keras_adadim")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise adaptive rate scaling (SGD + momentum + trust ratio).

    See the module docstring for the exact update rule (solo-learn's LARS).

    Args:
        learning_rate: float or a
            ``keras.optimizers.schedules.LearningRateSchedule`` (e.g.
            ``keras_adadim.optimizers.WarmupCosine``). The global learning
            rate ``lr``.
        momentum: float in [0, 1). Heavy-ball momentum ``mu``; 0 disables the
            momentum buffers. Defaults to 0.9.
        weight_decay: float or None. LARS' own L2 coefficient ``wd`` added to
            the gradient of adapted variables before the trust ratio
            (``g += wd * w``). Keras' decoupled decay is *not* applied on top.
        trust_coefficient: float > 0. ``eta`` in the trust ratio
            ``eta * ||w|| / (||g|| + wd * ||w|| + eps)``. Defaults to 0.02
            (solo-learn's SSL setting).
        eps: float. Added to the trust-ratio denominator. Defaults to 1e-8.
        clip_lr: bool. Replace the trust ratio ``r`` by ``min(r / lr, 1)``,
            i.e. the per-variable step size becomes ``min(r, lr)``.
        nesterov: bool. Nesterov momentum: ``w -= lr * (g + mu * v)``.
        exclude_bias_and_norm: bool. Variables of rank <= 1 (biases,
            BatchNorm/LayerNorm scale and offset) skip the trust ratio and the
            weight decay. Defaults to True.
        exclude_from_adaptation: optional list of regular expressions; a
            variable whose path (e.g. ``"projector/dense_2/kernel"``) matches
            any of them is treated like a bias (no trust ratio, no decay).
        **kwargs: the base optimizer's keyword arguments (``clipnorm``,
            ``global_clipnorm``, ``use_ema``, ``loss_scale_factor``,
            ``gradient_accumulation_steps``, ``name``, ...).
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=None,
        trust_coefficient=0.02,
        eps=1e-8,
        clip_lr=False,
        nesterov=False,
        exclude_bias_and_norm=True,
        exclude_from_adaptation=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1); got {momentum}."
            )
        if weight_decay is not None and float(weight_decay) < 0:
            raise ValueError(
                f"`weight_decay` must be >= 0 or None; got {weight_decay}."
            )
        if float(trust_coefficient) <= 0:
            raise ValueError(
                "`trust_coefficient` (eta) must be > 0; got "
                f"{trust_coefficient}. To switch the trust ratio off for some "
                "variables use `exclude_from_adaptation`."
            )
        if float(eps) < 0:
            raise ValueError(f"`eps` must be >= 0; got {eps}.")
        if nesterov and momentum == 0:
            raise ValueError("`nesterov=True` needs a momentum > 0.")
        if isinstance(exclude_from_adaptation, str):
            exclude_from_adaptation = [exclude_from_adaptation]
        self.momentum = momentum
        self.trust_coefficient = float(trust_coefficient)
        self.eps = float(eps)
        self.clip_lr = bool(clip_lr)
        self.nesterov = bool(nesterov)
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)
        self.exclude_from_adaptation = (
            list(exclude_from_adaptation) if exclude_from_adaptation else None
        )
        self._exclude_pattern = (
            re.compile("|".join(f"(?:{p})" for p in self.exclude_from_adaptation))
            if self.exclude_from_adaptation
            else None
        )

    def build(self, variables):
        """Create one momentum buffer per variable (none when momentum=0)."""
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def is_adapted(self, variable):
        """Whether ``variable`` gets the trust ratio and the weight decay."""
        if self.exclude_bias_and_norm and is_bias_or_norm(variable):
            return False
        if self._exclude_pattern is not None and self._exclude_pattern.search(
            variable_path(variable)
        ):
            return False
        return True

    def _apply_weight_decay(self, variables):
        # LARS applies its own (coupled) decay inside `update_step`; Keras'
        # decoupled `w -= lr * wd * w` must not run a second time.
        return

    def update_step(self, gradient, variable, learning_rate):
        """One LARS update of ``variable`` (see the module docstring)."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        if self.is_adapted(variable):
            wd = (
                float(self.weight_decay)
                if self.weight_decay is not None
                and self._use_weight_decay(variable)
                else 0.0
            )
            w = ops.convert_to_tensor(variable)
            w_norm = ops.sqrt(ops.sum(ops.square(w)))
            g_norm = ops.sqrt(ops.sum(ops.square(g)))
            ratio = ops.divide(
                ops.multiply(self.trust_coefficient, w_norm),
                ops.add(ops.add(g_norm, ops.multiply(wd, w_norm)), self.eps),
            )
            if self.clip_lr:
                # lr may be 0 (warm-up start): r / 0 = inf -> factor 1.
                ratio = ops.minimum(ops.divide(ratio, lr), 1.0)
            adapted = ops.multiply(ops.add(g, ops.multiply(wd, w)), ratio)
            valid = ops.logical_and(ops.greater(w_norm, 0), ops.greater(g_norm, 0))
            g = ops.where(valid, adapted, g)
        if self.momentum != 0:
            m = self.momentums[self._get_variable_index(variable)]
            mu = ops.cast(self.momentum, dtype)
            new_m = ops.add(ops.multiply(m, mu), g)
            self.assign(m, new_m)
            step = ops.add(g, ops.multiply(new_m, mu)) if self.nesterov else new_m
        else:
            step = g
        self.assign_sub(variable, ops.multiply(step, lr))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "trust_coefficient": self.trust_coefficient,
                "eps": self.eps,
                "clip_lr": self.clip_lr,
                "nesterov": self.nesterov,
                "exclude_bias_and_norm": self.exclude_bias_and_norm,
                "exclude_from_adaptation": self.exclude_from_adaptation,
            }
        )
        return config
