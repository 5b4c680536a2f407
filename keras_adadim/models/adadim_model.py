"""``AdaDimModel``: the one training model of every self-supervised method
(AdaDim by default; BYOL, SimSiam, Barlow Twins, MoCo v3, NNCLR, MoCo v2+,
SimCLR, VICReg, ... by ``method=``)."""

import inspect
import math
import threading
import warnings

import keras
import numpy as np
from keras import ops

from keras_adadim import distribute
from keras_adadim._validation import no_value_checks
from keras_adadim.config_checks import MULTI_CROP_METHODS
from keras_adadim.methods import Method
from keras_adadim.methods import Step
from keras_adadim.methods import get_method
from keras_adadim.methods.adadim import ALPHA_MODES  # noqa: F401 (public)
from keras_adadim.methods.components import cosine_decay_factor
from keras_adadim.models.online_probe import OnlineLinearProbe

# Outputs of `call` that are not a method's per-sample rows.
_RESERVED_OUTPUTS = frozenset({"valid", "views"})
# Names a method's rows may not use: the model adds `index` to the rows of
# a method with `needs_index`.
_MODEL_NAMES = _RESERVED_OUTPUTS | {"index"}
# The keys of a batch that carries image indices.
_INDEXED_KEYS = ("index", "views")
# Batches between the host reads of the loss that detect a bad batch.
CHECK_EVERY = 50

# Arguments of the AdaDim family that ``AdaDimModel`` accepts directly (its
# API before methods were layers); they are passed on to the method.
_METHOD_ARGUMENTS = (
    "alpha", "beta", "gamma", "temperature", "sim_weight", "var_weight",
    "cov_weight", "pairing", "renyi_order", "mi_penalty", "momentum",
    "predictor",
)


@keras.saving.register_keras_serializable(package="keras_adadim")
class AdaDimModel(keras.Model):
    """Self-supervised pre-training of ``encoder`` + ``projector`` with a
    method: AdaDim by default, or any of ``keras_adadim.presets.METHODS``
    (by name) or a :class:`keras_adadim.methods.Method` of your own.

    AdaDim's loss slides from VICReg (alpha = 0) to SimCLR's InfoNCE
    (alpha = 1) as the embedding's effective rank grows, and raises
    I(R; Z) with a Renyi mutual-information term::

        L = (1 - beta) [(1 - alpha) L_VICReg + alpha L_NCE] - beta L_mut

    **Views.** Each batch holds the method's views of the same images
    (two for every method here). ``fit`` accepts a tuple of views
    ``(x1, x2)`` (made by the input pipeline, e.g. ``keras_adadim.data``) or
    a single batch ``x`` that is duplicated. Methods with ``multi_crop``
    (SwAV, DINO) also take multi-crop batches ``(x1, x2, l1, ..., lk)``:
    two global views of one size and k local views of another (smaller)
    one; the encoder must then accept both sizes (an input shape of
    ``(None, None, C)``). If ``augmentation`` is given
    (one layer, applied independently to each view, or one layer per view)
    it runs inside the compiled step. Batches may carry integer labels,
    ``((x1, x2), y)``: they train the online linear probe (``num_classes``)
    and nothing else. Methods with per-image state (``needs_index``:
    DeepCluster v2) take ``{"views": (x1, x2), "index": i}``, the views
    with each image's integer index in the training set
    (``keras_adadim.data.pretraining_dataset(..., with_index=True)``).

    **Training.** The model overrides ``call`` (the method's forward pass
    over the views) and ``compute_loss`` (the method's target branch, loss
    terms, state updates, logging and the probe); Keras' own per-backend
    train step does the rest, so TensorFlow, JAX and PyTorch share this
    code and ``jit_compile`` stays on. Method state (alpha, EMA teachers,
    queues) lives in the method layer: saved with the model, restored on
    resume. Under ``tf.distribute`` every per-sample output is gathered
    over replicas first, so batch statistics are those of the global batch.

    Args:
        encoder: a Keras model or layer mapping images to representations R
            (b, d).
        projector: maps R to embeddings Z (b, F).
        method: a registered method name (``"adadim"``, ``"simclr"``,
            ``"vicreg"``, ``"simclr+lambda"``, ``"vicreg+lambda"``,
            ``"byol"``, ``"simsiam"``, ``"barlow_twins"``, ``"mocov3"``,
            ``"nnclr"``, ``"mocov2plus"``, ``"swav"``, ``"dino"``,
            ``"ressl"``, ``"deepclusterv2"``: ``keras_adadim.METHODS``) or a
            ``Method`` instance.
        alpha, beta, gamma, temperature, sim_weight, var_weight, cov_weight,
            pairing, renyi_order, mi_penalty, momentum, predictor: arguments
            of the method named by ``method`` (see
            :class:`keras_adadim.methods.AdaDim` and the other methods); an
            argument the method does not take raises.
        augmentation: optional layer, or one layer per view, making the views.
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
        temperature=None,
        sim_weight=None,
        var_weight=None,
        cov_weight=None,
        pairing=None,
        renyi_order=None,
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
        given = {k: v for k, v in zip(_METHOD_ARGUMENTS, (
            alpha, beta, gamma, temperature, sim_weight, var_weight,
            cov_weight, pairing, renyi_order, mi_penalty, momentum,
            predictor)) if v is not None}
        self.encoder = encoder
        self.projector = projector
        self.method = _make_method(method, given)
        self.method.setup(encoder, projector)
        # The ids of the teacher variables the optimizer must skip: taken
        # when first needed, and again once after the first (building) call,
        # which may create the teacher copies' variables (`_frozen`).
        self._frozen_ids = None
        self._frozen_final = False
        self.num_classes = None if num_classes is None else int(num_classes)
        self.probe_learning_rate = float(probe_learning_rate)
        self.probe_momentum = float(probe_momentum)
        n = self.method.num_views
        if isinstance(augmentation, (list, tuple)):
            # More layers than views: multi-crop's local crops, made in
            # the step (SwAV, DINO only).
            if len(augmentation) < n or (
                    len(augmentation) > n and not _multi_crop(self.method)):
                raise ValueError(
                    f"`augmentation` must be one layer or one layer per view "
                    f"({n}; more for the local crops of "
                    f"{' / '.join(MULTI_CROP_METHODS)}); got "
                    f"{len(augmentation)} layers for method "
                    f"{self.method.name!r}."
                )
            self.augmentation = list(augmentation)
        else:
            self.augmentation = augmentation
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
        # Steps taken and planned: drive the methods' schedules (alpha,
        # EMA momentum) and the probe's learning rate. Saved, so a resumed
        # run continues the schedules where it stopped.
        self.train_steps = self._state("train_steps", 0, "int32")
        self.planned_steps = self._state("planned_steps", 0, "int32")

        names = (*self.method.term_names, *self.method.log_names)
        if self.probe is not None:
            names += ("probe_loss", "probe_accuracy")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
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

    # AdaDim's alpha, reachable on the model as before methods were layers.
    @property
    def alpha_mode(self):
        """The method's alpha mode (``"adaptive"``, a float, ...); ``None``
        for methods without alpha."""
        return getattr(self.method, "alpha_mode", None)

    @property
    def alpha(self):
        return self._adadim_state("alpha")

    @property
    def beta(self):
        return self._adadim_state("beta")

    def set_alpha(self, value):
        """Set the method's alpha (and adaptive beta); no recompilation."""
        self._adadim_state("set_alpha")(value)

    def _adadim_state(self, name):
        if not hasattr(self.method, name):
            raise AttributeError(
                f"Method {self.method.name!r} has no {name!r}: alpha and beta "
                "belong to AdaDim and its SimCLR / VICReg settings."
            )
        return getattr(self.method, name)

    def load_own_variables(self, store):
        # Models saved before methods were layers held AdaDim's alpha and
        # beta as their own first two variables.
        keys = list(store.keys())
        if len(keys) == 4 and hasattr(self.method, "load_legacy_state"):
            self.method.load_legacy_state(store["0"], store["1"])
            self.train_steps.assign(store["2"])
            self.planned_steps.assign(store["3"])
            return
        super().load_own_variables(store)

    @property
    def metrics(self):
        return [*super().metrics, *self._trackers.values()]

    # An EMA teacher's weights are "trainable" (so its batch norm uses batch
    # statistics in training) but are moved by the EMA, never the optimizer.
    # The set is kept: the variables lists are read every training step on
    # PyTorch. Variables are made by the method's `setup` (in `__init__`)
    # and its `ensure_built` (in the first call, which drops the set).
    def _frozen(self):
        if self._frozen_ids is None:
            self._frozen_ids = frozenset(
                id(v) for v in self.method.frozen_variables())
        return self._frozen_ids

    def _trained(self, variables):
        frozen = self._frozen()
        return [v for v in variables if id(v) not in frozen]

    def _not_trained(self, variables):
        if not self.trainable:
            return variables
        frozen = self._frozen()
        return [v for v in variables if not v.trainable or id(v) in frozen]

    @property
    def trainable_weights(self):
        return self._trained(super().trainable_weights)

    @property
    def trainable_variables(self):
        return self._trained(super().trainable_variables)

    @property
    def non_trainable_weights(self):
        return self._not_trained(self.weights)

    @property
    def non_trainable_variables(self):
        return self._not_trained(self.variables)

    # ------------------------------------------------------------ the views
    def _split_index(self, inputs):
        """``(views input, index or None)`` of a batch: ``{"views": ...,
        "index": i}`` carries each image's index in the training set (for
        methods with per-image state), anything else is views alone."""
        if isinstance(inputs, dict):
            if tuple(sorted(inputs)) != _INDEXED_KEYS:
                raise ValueError(
                    "AdaDimModel takes images, a tuple of views `(x1, x2)`, "
                    "or a dict {'views': ..., 'index': i} (views with each "
                    "image's index in the training set); got a dict with "
                    f"keys {sorted(inputs)}.")
            index = ops.convert_to_tensor(inputs["index"])
            if len(index.shape) != 1 or "int" not in str(index.dtype):
                raise ValueError(
                    "`index` must be a vector of integer image indices, one "
                    f"per image; got shape {tuple(index.shape)} and dtype "
                    f"{index.dtype}.")
            return inputs["views"], index
        if self.method.needs_index:
            raise ValueError(
                f"Method {self.method.name!r} keeps per-image state and needs "
                "each image's index in the training set: feed batches "
                "`({'views': (x1, x2), 'index': i}, y)`, e.g. "
                "keras_adadim.data.pretraining_dataset(..., with_index=True) "
                "(pretrain and `adadim pretrain` do).")
        return inputs, None

    def _views(self, inputs):
        n = self.method.num_views
        if isinstance(inputs, (list, tuple)):
            self._check_view_count(len(inputs))
            views = list(inputs)
        else:
            # One view per augmentation layer (2 + k with local crops).
            views = [inputs] * max(n, len(self._augmentation_layers()))
            if self.augmentation is None and not self._warned_same_views:
                self._warned_same_views = True
                warnings.warn(
                    "AdaDimModel got one batch of images and has no "
                    "`augmentation`, so all views are identical and the "
                    "invariance term is trivially zero. Feed pairs of "
                    "augmented views (`keras_adadim.data.two_view_dataset`) "
                    "or pass `augmentation=`.",
                    stacklevel=2,
                )
        views = [ops.convert_to_tensor(x) for x in views]
        for i, x in enumerate(views, start=1):
            _check_images(x, f"x{i}", self._expected_rank())
        _check_view_shapes(views)
        b = views[0].shape[0]
        if b is not None and b < 2:
            raise ValueError(
                f"A batch of {b} image: self-supervised losses need batch "
                "statistics (variance, covariance, negatives) over at least 2 "
                "samples. Use a larger batch size, and `drop_remainder=True` "
                "so that the last batch is not a single image."
            )
        if self.augmentation is not None:
            augs = self._augmentation_layers()
            if len(views) != len(augs):  # zip below would drop views
                raise ValueError(
                    f"Got {len(views)} views and an `augmentation` of "
                    f"{len(augs)} layers, which makes its views from one "
                    "batch of images in the step (--augment-on device). "
                    "Feed the un-augmented images `x` (not views), or make "
                    "the views in the input pipeline: augmentation=None "
                    "(--augment-on host).")
            # Augmentations are random by nature: on in training and when
            # measuring the loss (evaluate), off never.
            views = [aug(x, training=True) for aug, x in zip(augs, views)]
        return views

    def _augmentation_layers(self):
        """One layer per view made in the step ([] without augmentation)."""
        if self.augmentation is None:
            return []
        if isinstance(self.augmentation, list):
            return self.augmentation
        return [self.augmentation] * self.method.num_views

    def _check_view_count(self, count):
        n = self.method.num_views
        if count == n or (count > n and _multi_crop(self.method)):
            return
        if count > n:
            raise ValueError(
                f"Method {self.method.name!r} trains on {n} views; got "
                f"{count} (multi-crop: {count - n} local crops). Only "
                f"{' and '.join(MULTI_CROP_METHODS)} use local crops: pass "
                "local_crops=0 (--local-crops 0), or one of those methods."
            )
        raise ValueError(
            f"Method {self.method.name!r} trains on {n} views; got a "
            f"sequence of {count} tensors. Yield `((x1, x2), y)` "
            "or `(x1, x2)` from your pipeline."
        )

    def _expected_rank(self):
        inputs = getattr(self.encoder, "inputs", None)
        if inputs:
            return len(inputs[0].shape)
        return None

    # ------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        """The method's forward pass over the views. Returns a dict of the
        method's per-sample outputs (``r1, r2, z1, z2``, and ``p1, p2``, ...
        by method) plus ``valid`` (False when the batch had NaN/Inf or a
        single sample) and, for methods with a target branch, ``views``."""
        distribute.check_single_process(self)  # PyTorch: one device only
        inputs, index = self._split_index(inputs)
        views = self._views(inputs)
        if index is not None and index.shape[0] is not None \
                and views[0].shape[0] is not None \
                and index.shape[0] != views[0].shape[0]:
            raise ValueError(
                f"`index` has {index.shape[0]} entries for a batch of "
                f"{views[0].shape[0]} images: give one index per image.")
        valid = ops.convert_to_tensor(ops.shape(views[0])[0] >= 2)
        for x in views:
            valid = ops.logical_and(valid, ops.all(ops.isfinite(x)))
        # Zero out non-finite pixels so a bad batch gives finite, zero
        # gradients (see compute_loss) instead of NaN weights.
        views = [ops.where(ops.isfinite(x), x, ops.zeros_like(x)) for x in views]
        rows = self.method.forward(views, self.encoder, self.projector, training)
        # State shaped by the data (teacher copies, queues) is created in the
        # first (building) call, so loading a saved model restores it.
        self.method.ensure_built(rows, views)
        if not self._frozen_final:
            self._frozen_ids = None  # ensure_built may have made variables
            self._frozen_final = True
        if self.probe is not None and not self.probe.built:
            self.probe.build(rows["r1"].shape)
        clash = _MODEL_NAMES & set(rows)
        if clash:
            raise ValueError(
                f"Method {self.method.name!r} returned outputs named "
                f"{sorted(clash)}, which the model reserves; rename them.")
        if self.method.needs_index:
            rows["index"] = index
        out = {**rows, "valid": valid}
        if self.method.has_targets:
            out["views"] = views
        return out

    def progress(self):
        """Fraction of the planned training steps done (0 if unknown)."""
        planned = ops.cast(self.planned_steps, "float32")
        done = ops.cast(self.train_steps, "float32")
        return ops.where(
            planned > 0, ops.minimum(done / ops.maximum(planned, 1.0), 1.0), 0.0
        )

    def step_rows(self, out, training):
        """The per-sample outputs of a forward pass ``out`` with the method's
        target branch added (moving its EMA teacher when ``training``)."""
        step = Step(training, self.progress())
        rows = {k: v for k, v in out.items() if k not in _RESERVED_OUTPUTS}
        if self.method.has_targets:
            rows.update(self.method.targets(
                rows, out["views"], self.encoder, self.projector, step))
        return rows

    def loss_terms(self, out, training=False):
        """The method's named loss terms of a forward pass ``out``."""
        rows = self.step_rows(out, training)
        return self.method.loss_terms(rows, Step(training, self.progress()))

    # ---------------------------------------------------------------- loss
    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        step = Step(training, self.progress())
        rows = self.step_rows(y_pred, training)
        # Distributed (TF strategies): every batch statistic below is taken
        # over the global batch, gathered from all replicas (distribute.py).
        rows, y, valid = distribute.gather_rows(rows, y, y_pred["valid"])
        # No NaN checks in the losses (on PyTorch each is a host sync): a
        # bad batch gives a NaN loss below, which the fit-time guard reports.
        with no_value_checks():
            terms = self.method.loss_terms(rows, step)
        loss = ops.cast(self.method.combine(terms, step), "float32")
        logs = self.method.logs(step)
        # Regularisation losses of the layers (weight decay), as in Keras.
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), "float32")
        # A bad batch (NaN/Inf pixels, a single sample) was zeroed in `call`;
        # here its gradients are made exactly zero and its logged loss NaN,
        # which the fit-time guard turns into a clear error.
        nan_if_invalid = ops.where(valid, 0.0, float("nan"))
        loss = ops.cast(valid, "float32") * loss + ops.stop_gradient(nan_if_invalid)
        self.method.update_state(rows, step, valid)
        for name, value in (*terms.items(), *logs.items()):
            self._trackers[name].update_state(value)
        if training:
            self.train_steps.assign_add(1)
        if y is not None:
            self._update_probe(rows, y, training)
        # Each replica holds the whole global-batch loss and the optimizer
        # sums replica gradients: divide by the replica count (1 if none).
        return distribute.scale_loss(loss)

    def _update_probe(self, rows, y, training):
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
        b = rows["r1"].shape[0]
        labels = _check_labels(y, b)
        both = ops.concatenate([labels, labels], axis=0)
        features = ops.concatenate([rows["r1"], rows["r2"]], axis=0)
        if training:
            loss, acc = self.probe.update(
                features, both,
                self.probe_learning_rate * cosine_decay_factor(self.progress()),
            )
        else:
            logits = self.probe(features)
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
        """The method's alpha estimate of one batch ``x``: for AdaDim
        ER(concat(z1, z2)) / min(2b, F) (concat(z1, z2t) with a momentum
        encoder).

        Runs the training-mode forward pass (as the paper's pseudo-code) in a
        ``StatelessScope``, so batch-norm statistics, EMA weights and random
        seeds are left untouched, and without recording gradients. With
        several JAX processes ``x`` is this process's slice and the rank is
        that of the global batch."""
        rank_ratio = self._adadim_state("rank_ratio")
        x = distribute.global_batch(x)
        with keras.StatelessScope():
            rows = self.step_rows(self(x, training=True), training=False)
        return rank_ratio(rows)

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

    def build_from_config(self, config):
        """Keras rebuilds a loaded model by a symbolic call on its saved
        input shapes, as float32 tensors; a batch with image indices
        (``{"views": ..., "index": i}``) needs its index to be integer."""
        shape = (config or {}).get("input_shape")
        if not (isinstance(shape, dict) and tuple(sorted(shape)) == _INDEXED_KEYS):
            return super().build_from_config(config)
        from keras import tree

        inputs = {
            "views": tree.map_shape_structure(keras.KerasTensor, shape["views"]),
            "index": keras.KerasTensor(tuple(shape["index"]), dtype="int32"),
        }
        self.compute_output_spec(inputs)  # runs `call`: makes the state
        self._build_shapes_dict = config
        self.built = True

    def compile_from_config(self, config):
        # Restores the optimizer when a saved model is loaded, so that
        # training resumes with its state (Keras skips this for models that
        # override `compile`).
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def fit(self, *args, planned_steps=None, check_every=None, **kwargs):
        """``keras.Model.fit``, plus: callbacks that draw training data
        (``set_training_data``, e.g. ``AlphaUpdater``) are given it, the
        planned number of steps is recorded for the schedules, array inputs
        are checked up front, and a batch that produced a non-finite loss
        stops training with a clear error.

        Args:
            planned_steps: the number of training steps of the whole run
                when it is split over several ``fit`` calls (a resumed run);
                default: ``epochs x steps`` of this call.
            check_every: batches between the reads of the loss on the host
                that detect a non-finite loss (and at every epoch's end);
                default ``CHECK_EVERY`` (a per-step read would stall a
                GPU's queue of steps).
        """
        from keras_adadim.callbacks.alpha_updater import AlphaUpdater

        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        params = bound.arguments
        x = params.get("x")
        _check_array_inputs(x, params.get("batch_size"))
        callbacks = list(params.get("callbacks") or [])
        for callback in callbacks:
            if hasattr(callback, "set_training_data"):
                callback.set_training_data(x, params.get("batch_size"))
        if self.method.adaptive and not any(
            isinstance(c, AlphaUpdater) for c in callbacks
        ):
            warnings.warn(
                "alpha='adaptive' but no `AlphaUpdater` callback was given: "
                f"alpha stays at {float(ops.convert_to_numpy(self.alpha)):.4f}. "
                "Pass `callbacks=[keras_adadim.AlphaUpdater()]`.",
                stacklevel=2,
            )
        params["callbacks"] = [
            _TrainingGuard(planned_steps, CHECK_EVERY if check_every is None
                           else check_every),
            *callbacks]
        try:
            # Under a TF strategy, batch norm uses global-batch statistics.
            with distribute.synchronized_batch_norm(self):
                return super().fit(
                    **{k: v for k, v in params.items() if k != "self"}
                )
        finally:
            for callback in callbacks:
                if hasattr(callback, "set_training_data"):
                    callback.set_training_data(None, None)

    # -------------------------------------------------------- serialisation
    def get_config(self):
        ser = keras.saving.serialize_keras_object
        aug = self.augmentation
        return {
            **super().get_config(),
            "encoder": ser(self.encoder),
            "projector": ser(self.projector),
            "method": ser(self.method),
            "augmentation": (
                None
                if aug is None
                else [ser(a) for a in aug]
                if isinstance(aug, list)
                else ser(aug)
            ),
            "num_classes": self.num_classes,
            "probe_learning_rate": self.probe_learning_rate,
            "probe_momentum": self.probe_momentum,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)

        def de(key, value):
            # Networks saved with their build shapes are built as they are
            # deserialised; a name scope per network keeps their variable
            # paths unique (PyTorch tracks parameters by path, and a
            # projector's and a predictor's "dense0/kernel" would collide).
            with keras.name_scope(config.get("name") or "model"):
                with keras.name_scope(key):
                    return keras.saving.deserialize_keras_object(value)

        for key in ("encoder", "projector", "predictor"):
            if config.get(key) is not None:
                config[key] = de(key, config[key])
        if isinstance(config.get("method"), dict):
            config["method"] = de("method", config["method"])
        aug = config.get("augmentation")
        if isinstance(aug, list):
            config["augmentation"] = [de("augmentation", a) for a in aug]
        elif aug is not None:
            config["augmentation"] = de("augmentation", aug)
        return cls(**config)


# The one model trains every method; this name says so.
SelfSupervisedModel = AdaDimModel


def _make_method(method, given):
    if isinstance(method, Method):
        if given:
            raise ValueError(
                f"Got a {type(method).__name__} method and the method "
                f"arguments {sorted(given)}: set them on the method itself."
            )
        return method
    if not isinstance(method, str):
        raise ValueError(
            "`method` must be a registered method name (e.g. 'adadim', "
            "'byol') or a keras_adadim.methods.Method; got "
            f"{type(method).__name__}."
        )
    return get_method(method, **given)


class _TrainingGuard(keras.callbacks.Callback):
    """Internal: records the planned steps and stops on a skipped batch.

    A bad batch makes the step's loss NaN (its gradients are zeroed in the
    step), and the epoch's running-mean loss in the logs stays NaN from
    then on, so reading it every ``check_every`` batches and at the epoch's
    end catches every bad batch without reading the device after each one
    (a host sync that stops Keras from queueing steps on a GPU). The error
    names the batches between the last good check and the failing one."""

    # Keras turns every batch's logs into Python numbers (a host read) before
    # `on_train_batch_end`: on the main thread, stalling the queue of steps,
    # unless all callbacks are default or `async_safe`; then in worker
    # threads. The checks do not depend on their order: the epoch's
    # running-mean loss stays NaN after a bad batch. PyTorch only: on JAX a
    # worker thread read arrays the next step had donated (RuntimeError
    # "Array has been deleted" instead of the guard's error), and Keras
    # never dispatches TensorFlow's callbacks to threads.
    @property
    def async_safe(self):
        return keras.backend.backend() == "torch"

    def __init__(self, planned_steps=None, check_every=CHECK_EVERY):
        super().__init__()
        self.planned = planned_steps
        self.check_every = int(check_every or 0)
        self._last_good = -1
        self._last_checked = 0
        self._lock = threading.Lock()

    def on_train_begin(self, logs=None):
        model = self.model
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if self.planned:
            model.planned_steps.assign(int(self.planned))
        elif steps:
            model.planned_steps.assign(int(steps) * int(epochs))
        elif model.method.needs_planned_steps:
            raise ValueError(
                f"Method {model.method.name!r} has a schedule (alpha or EMA "
                "momentum) that needs the number of steps per epoch, which "
                "this dataset does not report. Pass `steps_per_epoch=` to "
                "`fit`."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._last_good = -1
        self._last_checked = 0  # batches done at the last periodic check
        # The method's per-epoch work (e.g. DeepCluster v2's k-means), before
        # the other callbacks and the epoch's first step.
        self.model.method.on_epoch_begin(epoch)

    def on_train_batch_end(self, batch, logs=None):
        # With `steps_per_execution` k > 1 Keras calls this after every k
        # steps with the last step's index, so a check is due when the
        # batches done cross a multiple of `check_every`, not only land on
        # one.
        every = self.check_every
        if not every:
            return
        with self._lock:  # PyTorch: callbacks may run in worker threads
            if (batch + 1) // every <= self._last_checked // every:
                return
            # The previous check passed (or raised first): name the batches
            # since.
            first = self._last_checked
            self._last_checked = batch + 1
        self._check(batch, logs, first=first)

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps")
        self._check(None if steps is None else steps - 1, logs)

    def _check(self, batch, logs, first=None):
        loss = (logs or {}).get("loss")
        with self._lock:
            if loss is None or math.isfinite(float(loss)):
                if batch is not None:
                    self._last_good = max(self._last_good, batch)
                return
            if first is None:
                first = self._last_good + 1
        self.model.stop_training = True
        where = (f"Training batch {first}" if batch == first else
                 f"A training batch of batches {first}-{batch}"
                 if batch is not None else
                 f"A training batch after batch {self._last_good}")
        raise ValueError(
            f"{where} gave a non-finite loss. If it came from the data "
            "(NaN/Inf pixels, or a batch of a single image where variance "
            "is undefined) the batch was skipped and the weights are "
            "unchanged by it: clean the data or use `drop_remainder=True`. "
            "Otherwise the optimisation diverged: lower the learning rate."
        )


def _multi_crop(method):
    """Whether a method takes local crops beyond its views (SwAV, DINO)."""
    return bool(getattr(method, "multi_crop", False))


def _check_view_shapes(views):
    """The global views (the first two) share one shape; local views
    (multi-crop) share another, with the same batch and channels."""
    first = tuple(views[0].shape)
    for i, x in enumerate(views[1:2], start=2):
        if tuple(x.shape) != first:
            raise ValueError(
                f"The views must have the same shape; got {first} (x1) and "
                f"{tuple(x.shape)} (x{i}). Crop or resize every view to the "
                "same size in the input pipeline."
            )
    local = tuple(views[2].shape) if len(views) > 2 else None
    for i, x in enumerate(views[2:], start=3):
        shape = tuple(x.shape)
        if shape != local or shape[0] != first[0] or shape[-1] != first[-1]:
            raise ValueError(
                f"The local views (x3 on, multi-crop) must share one shape, "
                f"with the batch and channels of x1 {first}; got {shape} "
                f"(x{i}) and {local} (x3). Make every local crop the same "
                "size (local_crop_size, --local-crop-size)."
            )


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
