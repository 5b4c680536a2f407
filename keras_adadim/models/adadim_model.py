"""``AdaDimModel``: encoder + projector pre-trained with the AdaDim loss."""

import inspect
import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_adadim import distribute
from keras_adadim.losses.adadim import PAIRINGS
from keras_adadim.losses.adadim import combine_adadim
from keras_adadim.losses.adadim import mutual_information_term
from keras_adadim.losses.nt_xent import nt_xent
from keras_adadim.losses.vicreg import vicreg
from keras_adadim.metrics.spectrum import effective_rank
from keras_adadim.models.online_probe import OnlineLinearProbe

ALPHA_MODES = ("adaptive", "cosine", "linear")

# Each method of the paper's comparisons (SPEC: AdaDim, "+lambda" baselines)
# is a setting of the same model; explicit arguments override these.
METHODS = {
    "adadim": {"alpha": "adaptive", "beta": "adaptive", "gamma": 1e-4},
    "simclr": {"alpha": 1.0, "beta": 0.0, "gamma": 0.0},
    "vicreg": {"alpha": 0.0, "beta": 0.0, "gamma": 0.0},
    "simclr+lambda": {
        "alpha": 1.0,
        "beta": 0.0,
        "gamma": 0.0,
        "mi_penalty": 1e-4,
    },
    "vicreg+lambda": {
        "alpha": 0.0,
        "beta": 0.0,
        "gamma": 0.0,
        "mi_penalty": 1e-4,
    },
}

_DEFAULTS = {
    "alpha": "adaptive",
    "beta": "adaptive",
    "gamma": 1e-4,
    "mi_penalty": 0.0,
}


@keras.saving.register_keras_serializable(package="keras_adadim")
class AdaDimModel(keras.Model):
    """Self-supervised pre-training of ``encoder`` + ``projector`` with AdaDim.

    The loss slides from VICReg (alpha = 0) to SimCLR's InfoNCE (alpha = 1)
    as the embedding's effective rank grows, and raises I(R; Z) with a Renyi
    mutual-information term (``keras_adadim.losses.adadim_loss``)::

        L = (1 - beta) [(1 - alpha) L_VICReg + alpha L_NCE] - beta L_mut

    **Views.** Each batch holds two views of the same images. ``fit`` accepts
    either a pair ``(x1, x2)`` (views made by the input pipeline, e.g.
    ``keras_adadim.data``) or a single batch ``x`` that is duplicated. If
    ``augmentation`` is given (one layer, applied independently to each view,
    or a pair of layers for asymmetric schemes) it runs inside the compiled
    step on both views, on top of whatever the pipeline did. Batches may
    carry integer labels, ``((x1, x2), y)``: they train the online linear
    probe (``num_classes``) and nothing else.

    **Training.** The model overrides ``call`` (both views through encoder and
    projector, and the momentum branch) and ``compute_loss`` (the AdaDim
    loss, its logging and the probe update); Keras' own per-backend train
    step does the rest, so TensorFlow, JAX and PyTorch share this code and
    ``jit_compile`` stays on. alpha and beta are non-trainable variables:
    they are saved with the model, restored on resume, and changing them
    (``AlphaUpdater``, schedules) never recompiles the step.

    Args:
        encoder: a Keras model or layer mapping images to representations R
            (b, d).
        projector: maps R to embeddings Z (b, F).
        method: ``"adadim"`` (default), ``"simclr"``, ``"vicreg"``,
            ``"simclr+lambda"`` or ``"vicreg+lambda"``; sets alpha, beta,
            gamma and mi_penalty, which explicit arguments override.
        alpha: ``"adaptive"`` (set by ``AlphaUpdater`` from the effective
            rank), a float in [0, 1], or ``"cosine"`` / ``"linear"`` to go
            from 0 to 1 over training.
        beta: ``"adaptive"`` (beta = gamma * alpha) or a float.
        gamma: scale of adaptive beta (1e-4); 0 disables L_mut.
        temperature: NT-Xent temperature.
        sim_weight, var_weight, cov_weight: VICReg weights (25, 25, 1).
        pairing: ``"cross"`` (I(z1; r2), I(z2; r1), Algorithm 1) or
            ``"same"`` for L_mut.
        renyi_order: order of the Renyi entropy in L_mut (2).
        mi_penalty: lambda of the "+lambda I(R; Z)" baselines (0 for AdaDim).
        momentum: ``None`` (no momentum encoder) or the base EMA momentum
            (0.996), raised to 1 by a cosine schedule over training.
        predictor: optional head on the online branch (momentum variant).
        augmentation: optional layer, or pair of layers, making the views.
        num_classes: enables the online linear probe on labelled batches.
        probe_learning_rate: the probe's own learning rate (cosine-decayed).
        probe_momentum: the probe's SGD momentum.
    """

    def __init__(
        self,
        encoder,
        projector,
        method="adadim",
        alpha=None,
        beta=None,
        gamma=None,
        temperature=0.1,
        sim_weight=25.0,
        var_weight=25.0,
        cov_weight=1.0,
        pairing="cross",
        renyi_order=2,
        mi_penalty=None,
        momentum=None,
        predictor=None,
        augmentation=None,
        num_classes=None,
        probe_learning_rate=0.1,
        probe_momentum=0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(
                f"Unknown method {method!r}; choose one of {sorted(METHODS)}."
            )
        given = {"alpha": alpha, "beta": beta, "gamma": gamma}
        given["mi_penalty"] = mi_penalty
        settings = {**_DEFAULTS, **METHODS[method]}
        settings.update({k: v for k, v in given.items() if v is not None})
        self.method = method
        self.alpha_mode = _check_alpha(settings["alpha"])
        self.beta_mode = _check_beta(settings["beta"])
        self.gamma = float(settings["gamma"])
        self.mi_penalty = float(settings["mi_penalty"])
        if pairing not in PAIRINGS:
            raise ValueError(
                f"`pairing` must be one of {PAIRINGS}; got {pairing!r}."
            )
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0; got {temperature}.")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be in [0, 1]; got {momentum}.")
        self.temperature = float(temperature)
        self.sim_weight = float(sim_weight)
        self.var_weight = float(var_weight)
        self.cov_weight = float(cov_weight)
        self.pairing = pairing
        self.renyi_order = renyi_order
        self.momentum = None if momentum is None else float(momentum)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.probe_learning_rate = float(probe_learning_rate)
        self.probe_momentum = float(probe_momentum)

        self.encoder = encoder
        self.projector = projector
        self.predictor = predictor
        if isinstance(augmentation, (list, tuple)):
            if len(augmentation) != 2:
                raise ValueError(
                    "`augmentation` must be one layer or a pair of layers "
                    f"(one per view); got {len(augmentation)} layers."
                )
            self.augmentation = list(augmentation)
        else:
            self.augmentation = augmentation
        if self.momentum is not None:
            self.momentum_encoder = _frozen_copy(encoder)
            self.momentum_projector = _frozen_copy(projector)
        else:
            self.momentum_encoder = self.momentum_projector = None
        self.probe = (
            OnlineLinearProbe(
                self.num_classes,
                momentum=self.probe_momentum,
                name="probe",
                dtype="float32",  # its own SGD runs in float32
            )
            if self.num_classes
            else None
        )

        initial_alpha = (
            self.alpha_mode if isinstance(self.alpha_mode, float) else 0.0
        )
        self.alpha = self._state("alpha", initial_alpha, "float32")
        self.beta = self._state("beta", self._beta_for(initial_alpha), "float32")
        # Steps taken and planned: drive the cosine/linear alpha schedules,
        # the EMA momentum and the probe's learning rate. Saved, so a resumed
        # run continues the schedules where it stopped.
        self.train_steps = self._state("train_steps", 0, "int32")
        self.planned_steps = self._state("planned_steps", 0, "int32")

        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("vicreg", "nce", "mut", "alpha", "beta")
        }
        if self.probe is not None:
            self._trackers["probe_loss"] = keras.metrics.Mean("probe_loss")
            self._trackers["probe_accuracy"] = keras.metrics.Mean(
                "probe_accuracy"
            )
        self._fit_data = None
        self._fit_batch_size = None
        self._warned_labels = False
        self._warned_same_views = False

    # ------------------------------------------------------------------ state
    def _state(self, name, value, dtype):
        return self.add_weight(
            name=name,
            shape=(),
            dtype=dtype,
            initializer=keras.initializers.Constant(value),
            trainable=False,
        )

    def _beta_for(self, alpha):
        if self.beta_mode == "adaptive":
            return self.gamma * alpha
        return self.beta_mode

    def set_alpha(self, value):
        """Set alpha (and adaptive beta = gamma * alpha); no recompilation."""
        value = float(value)
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise ValueError(f"alpha must be in [0, 1]; got {value}.")
        self.alpha.assign(value)
        self.beta.assign(self._beta_for(value))

    @property
    def metrics(self):
        return [*super().metrics, *self._trackers.values()]

    # ------------------------------------------------------------ the views
    def _views(self, inputs):
        if isinstance(inputs, dict):
            raise ValueError(
                "AdaDimModel takes images or a pair of views `(x1, x2)`, not "
                f"a dict (keys {sorted(inputs)})."
            )
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise ValueError(
                    "Expected a pair of views `(x1, x2)`; got a sequence of "
                    f"{len(inputs)} tensors. Yield `((x1, x2), y)` or "
                    "`(x1, x2)` from your pipeline."
                )
            x1, x2 = inputs
        else:
            x1 = x2 = inputs
            if self.augmentation is None and not self._warned_same_views:
                self._warned_same_views = True
                warnings.warn(
                    "AdaDimModel got one batch of images and has no "
                    "`augmentation`, so both views are identical and the "
                    "invariance term is trivially zero. Feed pairs of "
                    "augmented views (`keras_adadim.data.two_view_dataset`) "
                    "or pass `augmentation=`.",
                    stacklevel=2,
                )
        x1, x2 = ops.convert_to_tensor(x1), ops.convert_to_tensor(x2)
        for name, x in (("x1", x1), ("x2", x2)):
            _check_images(x, name, self._expected_rank())
        if tuple(x1.shape) != tuple(x2.shape):
            raise ValueError(
                f"The two views must have the same shape; got "
                f"{tuple(x1.shape)} and {tuple(x2.shape)}. Crop or resize "
                "both views to the same size in the input pipeline."
            )
        if x1.shape[0] is not None and x1.shape[0] < 2:
            raise ValueError(
                f"A batch of {x1.shape[0]} image: the AdaDim loss needs batch "
                "statistics (variance, covariance, negatives) over at least 2 "
                "samples. Use a larger batch size, and `drop_remainder=True` "
                "so that the last batch is not a single image."
            )
        if self.augmentation is not None:
            aug1, aug2 = (
                self.augmentation
                if isinstance(self.augmentation, list)
                else (self.augmentation, self.augmentation)
            )
            # Augmentations are random by nature: on in training and when
            # measuring the loss (evaluate), off never.
            x1 = aug1(x1, training=True)
            x2 = aug2(x2, training=True)
        return x1, x2

    def _expected_rank(self):
        inputs = getattr(self.encoder, "inputs", None)
        if inputs:
            return len(inputs[0].shape)
        return None

    # ------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        """Both views through the online network; returns a dict with
        ``r1, r2`` (representations), ``z1, z2`` (embeddings), ``p1, p2``
        (predictor), ``probe_logits``, ``valid`` (False when the batch had
        NaN/Inf or a single sample) and, with a momentum encoder, the views
        ``x1, x2`` for the momentum branch (see ``momentum_outputs``)."""
        distribute.check_single_process(self)  # PyTorch: one device only
        x1, x2 = self._views(inputs)
        valid = ops.all(ops.isfinite(x1)) & ops.all(ops.isfinite(x2))
        valid = ops.logical_and(
            valid, ops.convert_to_tensor(ops.shape(x1)[0] >= 2)
        )
        # Zero out non-finite pixels so a bad batch gives finite, zero
        # gradients (see compute_loss) instead of NaN weights.
        x1 = ops.where(ops.isfinite(x1), x1, ops.zeros_like(x1))
        x2 = ops.where(ops.isfinite(x2), x2, ops.zeros_like(x2))
        out = {"valid": valid}
        out["r1"] = self.encoder(x1, training=training)
        out["r2"] = self.encoder(x2, training=training)
        out["z1"] = self.projector(out["r1"], training=training)
        out["z2"] = self.projector(out["r2"], training=training)
        if self.predictor is not None:
            out["p1"] = self.predictor(out["z1"], training=training)
            out["p2"] = self.predictor(out["z2"], training=training)
        if self.momentum_encoder is not None:
            # The momentum branch runs in compute_loss, outside the autocast
            # scope of `call`, so the EMA is kept in float32 under mixed
            # precision; it needs the views.
            out["x1"], out["x2"] = x1, x2
            # Build the copies here, so that loading a saved model (which
            # builds by running `call`) creates their weights too.
            for net, shape in (
                (self.momentum_encoder, x1.shape),
                (self.momentum_projector, out["r1"].shape),
            ):
                if not net.built:
                    net.build(shape)
        if self.probe is not None:
            out["probe_logits"] = self.probe(
                ops.concatenate([out["r1"], out["r2"]], axis=0)
            )
        return out

    def _progress(self):
        """Fraction of the planned training steps done (0 if unknown)."""
        planned = ops.cast(self.planned_steps, "float32")
        done = ops.cast(self.train_steps, "float32")
        return ops.where(
            planned > 0, ops.minimum(done / ops.maximum(planned, 1.0), 1.0), 0.0
        )

    def current_momentum(self):
        """EMA momentum: base -> 1 by a cosine schedule over training."""
        cosine = (ops.cos(math.pi * self._progress()) + 1.0) / 2.0
        return 1.0 - (1.0 - self.momentum) * cosine

    def momentum_outputs(self, out, training=False):
        """The momentum branch of a forward pass: ``r1m, r2m, z1m, z2m``
        (stop-gradient). In training, first moves the EMA weights."""
        if training:
            self._update_momentum_branch()
        targets = {}
        for i in ("1", "2"):
            rm = self.momentum_encoder(out["x" + i], training=training)
            zm = self.momentum_projector(rm, training=training)
            targets["r" + i + "m"] = ops.stop_gradient(rm)
            targets["z" + i + "m"] = ops.stop_gradient(zm)
        return targets

    def _update_momentum_branch(self):
        m = self.current_momentum()
        for online_net, target_net in (
            (self.encoder, self.momentum_encoder),
            (self.projector, self.momentum_projector),
        ):
            # All float weights, normalisation statistics included: the
            # frozen copy runs its batch-norm layers in inference mode.
            for online, target in zip(online_net.weights, target_net.weights):
                if "float" not in keras.backend.standardize_dtype(target.dtype):
                    continue
                new = m * target + (1.0 - m) * ops.cast(online, target.dtype)
                target.assign(ops.stop_gradient(new))

    # ---------------------------------------------------------------- loss
    def _uses(self):
        """Which loss terms the configuration needs (static, so a preset
        like SimCLR never pays for VICReg or L_mut)."""
        a, b = self.alpha_mode, self.beta_mode
        needs_mut = self.mi_penalty != 0 or not (
            (b == "adaptive" and self.gamma == 0) or b == 0.0
        )
        return (a != 1.0, a != 0.0, needs_mut)

    def loss_terms(self, out):
        """VICReg, NCE and L_mut of one forward pass (float32 scalars)."""
        use_vic, use_nce, use_mut = self._uses()
        zero = ops.zeros((), "float32")

        def vic(a, b):
            return vicreg(
                a, b, self.sim_weight, self.var_weight, self.cov_weight
            )

        def nce(a, b):
            return nt_xent(a, b, self.temperature)

        def mut(z1, z2, r1, r2):
            return mutual_information_term(
                z1, z2, r1, r2, self.pairing, self.renyi_order
            )

        q1, q2 = out.get("p1", out["z1"]), out.get("p2", out["z2"])
        if self.momentum_encoder is None:
            v = vic(q1, q2) if use_vic else zero
            n = nce(q1, q2) if use_nce else zero
            m = mut(out["z1"], out["z2"], out["r1"], out["r2"]) if use_mut else zero
        else:
            z1m, z2m = out["z1m"], out["z2m"]
            v = 0.5 * (vic(q1, z2m) + vic(z1m, q2)) if use_vic else zero
            n = 0.5 * (nce(q1, z2m) + nce(z1m, q2)) if use_nce else zero
            if use_mut:
                online = mut(out["z1"], out["z2"], out["r1"], out["r2"])
                target = mut(z1m, z2m, out["r1m"], out["r2m"])
                m = 0.5 * (online + target)
            else:
                m = zero
        return {"vicreg": v, "nce": n, "mut": m}

    def _alpha_beta(self, training):
        if self.alpha_mode in ("cosine", "linear") and training:
            p = self._progress()
            if self.alpha_mode == "linear":
                alpha = p
            else:
                alpha = (1.0 - ops.cos(math.pi * p)) / 2.0
            self.alpha.assign(alpha)
            self.beta.assign(self._beta_for(alpha))
        alpha = ops.convert_to_tensor(self.alpha)
        if self.beta_mode == "adaptive":
            beta = self.gamma * alpha
        else:
            beta = ops.convert_to_tensor(self.beta)
        return alpha, beta

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        out = y_pred
        if self.momentum_encoder is not None:
            out = {**out, **self.momentum_outputs(out, training)}
        # Distributed (TF strategies): every batch statistic below is taken
        # over the global batch, gathered from all replicas (distribute.py).
        out, y = distribute.gather_outputs(out, y)
        terms = self.loss_terms(out)
        alpha, beta = self._alpha_beta(training)
        loss = combine_adadim(
            terms["vicreg"],
            terms["nce"],
            terms["mut"],
            alpha,
            beta,
            self.mi_penalty,
        )
        # Regularisation losses of the layers (weight decay), as in Keras.
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), "float32")
        # A bad batch (NaN/Inf pixels, a single sample) was zeroed in `call`;
        # here its gradients are made exactly zero and its logged loss NaN,
        # which the fit-time guard turns into a clear error.
        valid = ops.cast(out["valid"], "float32")
        nan_if_invalid = ops.where(out["valid"], 0.0, float("nan"))
        loss = valid * loss + ops.stop_gradient(nan_if_invalid)
        for name, value in (*terms.items(), ("alpha", alpha), ("beta", beta)):
            self._trackers[name].update_state(value)
        if training:
            self.train_steps.assign_add(1)
        if y is not None:
            self._update_probe(out, y, training)
        # Each replica holds the whole global-batch loss and the optimizer
        # sums replica gradients: divide by the replica count (1 if none).
        return distribute.scale_loss(loss)

    def _update_probe(self, out, y, training):
        if self.probe is None:
            if not self._warned_labels:
                self._warned_labels = True
                warnings.warn(
                    "The data yields labels but AdaDimModel has no "
                    "`num_classes`, so they are ignored. Pass "
                    "`num_classes=...` to train the online linear probe.",
                    stacklevel=2,
                )
            return
        b = out["r1"].shape[0]
        labels = _check_labels(y, b)
        both = ops.concatenate([labels, labels], axis=0)
        features = ops.concatenate([out["r1"], out["r2"]], axis=0)
        if training:
            cosine = (ops.cos(math.pi * self._progress()) + 1.0) / 2.0
            loss, acc = self.probe.update(
                features, both, self.probe_learning_rate * cosine
            )
        else:
            logits = out["probe_logits"]
            onehot = ops.one_hot(both, self.num_classes, dtype="float32")
            loss = -ops.mean(
                ops.sum(onehot * ops.log_softmax(logits, axis=-1), axis=-1)
            )
            acc = ops.mean(
                ops.cast(ops.argmax(logits, axis=-1) == both, "float32")
            )
        self._trackers["probe_loss"].update_state(loss)
        self._trackers["probe_accuracy"].update_state(acc)

    # --------------------------------------------------------- alpha update
    def embedding_rank_ratio(self, x):
        """ER(concat(z1, z2)) / min(2b, F) for one batch ``x`` (the alpha
        estimate of one batch; concat(z1, z2m) in the momentum variant).

        Runs the training-mode forward pass (as the paper's pseudo-code) in a
        ``StatelessScope``, so batch-norm statistics, EMA weights and random
        seeds are left untouched. With several JAX processes ``x`` is this
        process's slice and the rank is that of the global batch."""
        x = distribute.global_batch(x)
        with keras.StatelessScope():
            out = self(x, training=True)
            if self.momentum_encoder is not None:
                z2 = self.momentum_outputs(out)["z2m"]
            else:
                z2 = out["z2"]
        z = ops.concatenate([out["z1"], z2], axis=0)
        n, f = z.shape
        rank = ops.convert_to_numpy(effective_rank(ops.stop_gradient(z)))
        return float(rank) / min(n, f)

    # --------------------------------------------------------------- fit
    def compile(self, optimizer="adam", loss=None, **kwargs):
        if loss is not None:
            raise ValueError(
                "AdaDimModel computes its own loss (AdaDim, or the method "
                "given as `method=`); call `compile(optimizer=...)` without "
                "`loss`."
            )
        kwargs.setdefault("jit_compile", "auto")
        super().compile(optimizer=optimizer, **kwargs)
        if not self.jit_compile and kwargs["jit_compile"] == "auto":
            slow = [
                layer.name
                for layer in self._flatten_layers()
                if not layer.supports_jit
            ]
            if slow:
                warnings.warn(
                    f"Layers {slow} cannot be XLA-compiled, so the training "
                    "step runs without `jit_compile` (much slower, above "
                    "all on JAX). Make the views in the `tf.data` pipeline "
                    "instead (`keras_adadim.data.two_view_dataset`).",
                    stacklevel=2,
                )

    def compile_from_config(self, config):
        # Restores the optimizer when a saved model is loaded, so that
        # training resumes with its state (Keras skips this for models that
        # override `compile`).
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, plus: the training data is remembered for
        ``AlphaUpdater``, the planned number of steps is recorded for the
        schedules, array inputs are checked up front, and a batch that
        produced a non-finite loss stops training with a clear error."""
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        params = bound.arguments
        x = params.get("x")
        _check_array_inputs(x, params.get("batch_size"))
        self._fit_data = x
        self._fit_batch_size = params.get("batch_size")
        callbacks = list(params.get("callbacks") or [])
        if self.alpha_mode == "adaptive" and not any(
            type(c).__name__ == "AlphaUpdater" for c in callbacks
        ):
            warnings.warn(
                "alpha='adaptive' but no `AlphaUpdater` callback was given: "
                f"alpha stays at {float(ops.convert_to_numpy(self.alpha)):.4f}. "
                "Pass `callbacks=[keras_adadim.AlphaUpdater()]`.",
                stacklevel=2,
            )
        params["callbacks"] = [_TrainingGuard(), *callbacks]
        try:
            # Under a TF strategy, batch norm uses global-batch statistics.
            with distribute.synchronized_batch_norm(self):
                return super().fit(
                    **{k: v for k, v in params.items() if k != "self"}
                )
        finally:
            self._fit_data = None

    # -------------------------------------------------------- serialisation
    def get_config(self):
        ser = keras.saving.serialize_keras_object
        aug = self.augmentation
        return {
            **super().get_config(),
            "encoder": ser(self.encoder),
            "projector": ser(self.projector),
            "predictor": None if self.predictor is None else ser(self.predictor),
            "augmentation": (
                None
                if aug is None
                else [ser(a) for a in aug]
                if isinstance(aug, list)
                else ser(aug)
            ),
            "method": self.method,
            "alpha": self.alpha_mode,
            "beta": self.beta_mode,
            "gamma": self.gamma,
            "temperature": self.temperature,
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "cov_weight": self.cov_weight,
            "pairing": self.pairing,
            "renyi_order": self.renyi_order,
            "mi_penalty": self.mi_penalty,
            "momentum": self.momentum,
            "num_classes": self.num_classes,
            "probe_learning_rate": self.probe_learning_rate,
            "probe_momentum": self.probe_momentum,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        de = keras.saving.deserialize_keras_object
        for key in ("encoder", "projector", "predictor"):
            if config.get(key) is not None:
                config[key] = de(config[key])
        aug = config.get("augmentation")
        if isinstance(aug, list):
            config["augmentation"] = [de(a) for a in aug]
        elif aug is not None:
            config["augmentation"] = de(aug)
        return cls(**config)


class _TrainingGuard(keras.callbacks.Callback):
    """Internal: records the planned steps and stops on a skipped batch."""

    def on_train_begin(self, logs=None):
        model = self.model
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        # A run split over several `fit` calls (a resumed partial epoch)
        # sets `model.total_steps` so the schedules see the whole run.
        total = getattr(model, "total_steps", None)
        if total:
            model.planned_steps.assign(int(total))
        elif steps:
            model.planned_steps.assign(int(steps) * int(epochs))
        elif model.alpha_mode in ("cosine", "linear") or (
            model.momentum is not None
        ):
            raise ValueError(
                "The alpha schedule / momentum schedule needs the number of "
                "steps per epoch, which this dataset does not report. Pass "
                "`steps_per_epoch=` to `fit`."
            )

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise ValueError(
                f"Training batch {batch} gave a non-finite loss. If it came "
                "from the data (NaN/Inf pixels, or a batch of a single image "
                "where variance is undefined) the batch was skipped and the "
                "weights are unchanged: clean the data or use "
                "`drop_remainder=True`. Otherwise the optimisation diverged: "
                "lower the learning rate."
            )


def _frozen_copy(model):
    copy = keras.models.clone_model(model)
    copy.trainable = False
    return copy


def _check_alpha(alpha):
    if isinstance(alpha, str):
        if alpha not in ALPHA_MODES:
            raise ValueError(
                f"`alpha` must be a float in [0, 1] or one of {ALPHA_MODES}; "
                f"got {alpha!r}."
            )
        return alpha
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"A fixed `alpha` must be in [0, 1]; got {alpha}.")
    return alpha


def _check_beta(beta):
    if isinstance(beta, str):
        if beta != "adaptive":
            raise ValueError(
                f"`beta` must be 'adaptive' or a float; got {beta!r}."
            )
        return beta
    return float(beta)


def _check_images(x, name, expected_rank):
    dtype = keras.backend.standardize_dtype(x.dtype)
    if "float" not in dtype:
        raise ValueError(
            f"View `{name}` has dtype {dtype}; AdaDimModel expects floating "
            "point images. Convert them first, e.g. "
            "`keras.ops.cast(x, 'float32') / 255.0` or a "
            "`keras.layers.Rescaling(1 / 255)` in the pipeline."
        )
    if expected_rank is not None and len(x.shape) != expected_rank:
        raise ValueError(
            f"View `{name}` has shape {tuple(x.shape)} (rank {len(x.shape)}) "
            f"but the encoder expects rank {expected_rank} inputs "
            "(batch, height, width, channels for images). Batch the data "
            "(`dataset.batch(...)`) or add the missing channel axis."
        )
    if expected_rank is None and len(x.shape) < 2:
        raise ValueError(
            f"View `{name}` has shape {tuple(x.shape)}; expected a batch "
            "(batch, ...)."
        )


def _check_labels(y, batch_size):
    y = ops.convert_to_tensor(y)
    shape = tuple(y.shape)
    dtype = keras.backend.standardize_dtype(y.dtype)
    ok_rank = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
    if not ok_rank or not ("int" in dtype):
        raise ValueError(
            f"Labels must be integer class ids of shape (batch,) or "
            f"(batch, 1); got shape {shape} and dtype {dtype}. For one-hot "
            "labels use `argmax(y, axis=-1)` in the pipeline."
        )
    if shape[0] is not None and batch_size is not None and shape[0] != batch_size:
        raise ValueError(
            f"Got {shape[0]} labels for a batch of {batch_size} images."
        )
    return ops.reshape(ops.cast(y, "int32"), (-1,))


def _check_array_inputs(x, batch_size):
    """Eager checks for NumPy inputs, before any training step runs."""
    arrays = x if isinstance(x, (list, tuple)) else [x]
    if not all(isinstance(a, np.ndarray) for a in arrays):
        return
    for a in arrays:
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            bad = int(np.sum(~np.isfinite(a).reshape(len(a), -1).all(1)))
            raise ValueError(
                f"The training images contain NaN or Inf ({bad} image(s)). "
                "Remove or repair them before calling `fit`."
            )
    n, b = len(arrays[0]), batch_size or 32
    if n < 2 or n % b == 1:
        raise ValueError(
            f"{n} samples with batch_size={b} leave a final batch of a single "
            "image, for which variance and covariance are undefined. Choose "
            "another batch size or drop one sample."
        )
