"""AdaDim and the settings of it the paper compares against (SimCLR, VICReg
and their "+lambda I(R; Z)" baselines)."""

import math

import keras
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.adadim import PAIRINGS
from keras_adadim.losses.adadim import GramCache
from keras_adadim.losses.adadim import adadim_terms
from keras_adadim.losses.adadim import combine_adadim
from keras_adadim.methods import base
from keras_adadim.methods.components import EMATeacher
from keras_adadim.methods.components import cosine_decay_factor
from keras_adadim.metrics.spectrum import check_rank_definition
from keras_adadim.metrics.spectrum import effective_rank_of

ALPHA_MODES = ("adaptive", "cosine", "linear")


@keras.saving.register_keras_serializable(package="keras_adadim")
class AdaDim(base.Method):
    """AdaDim (SPEC: AdaDim; paper Eq. 5, Algorithm 1)::

        L = (1 - beta) [(1 - alpha) L_VICReg + alpha L_NCE] - beta L_mut
            + mi_penalty L_mut

    alpha = 0 is VICReg, alpha = 1 SimCLR's NT-Xent; adaptive alpha is
    ER(concat(z1, z2)) / min(2b, F), set by ``AlphaUpdater`` every e_alpha
    epochs; adaptive beta = gamma alpha. alpha and beta are non-trainable
    variables: saved, restored on resume, and changing them never
    recompiles the step. Terms logged: ``vicreg``, ``nce``, ``mut`` (and
    ``alpha``, ``beta``). Terms a configuration cannot use (VICReg at
    alpha = 1, ...) are not computed.

    Args:
        alpha: ``"adaptive"``, a float in [0, 1], or ``"cosine"`` /
            ``"linear"`` (0 -> 1 over training).
        beta: ``"adaptive"`` (gamma alpha) or a float in [0, 1).
        gamma: scale of adaptive beta (1e-4, Table 9); 0 disables L_mut.
        temperature: NT-Xent temperature (0.1).
        sim_weight, var_weight, cov_weight: VICReg weights (25, 25, 1).
        pairing: ``"cross"`` (I(z1; r2), I(z2; r1), Algorithm 1) or ``"same"``.
        renyi_order: Renyi order of L_mut (2).
        mi_penalty: lambda of the "+lambda I(R; Z)" baselines (0 for AdaDim).
        momentum: ``None`` or the base EMA momentum of a momentum encoder
            (0.996, the expanded setting), raised to 1 by a cosine schedule;
            the losses then pair each online view with the other view's
            momentum embedding, averaged over both directions.
        predictor: optional head on the online branch.
        rank_definition: how the effective rank of adaptive alpha is taken
            (``keras_adadim.metrics.spectrum.effective_rank_of``):
            ``"singular"`` (default, SPEC: singular values of the raw
            concat(z1, z2)), ``"squared"`` (their squares, the eigenvalues
            of Z Z^T), ``"centered"`` (Z centred over rows) or
            ``"normalized"`` (rows L2-normalised). See
            docs/alpha_definition.md.
    """

    term_names = ("vicreg", "nce", "mut")
    log_names = ("alpha", "beta")

    def __init__(
        self,
        alpha="adaptive",
        beta="adaptive",
        gamma=1e-4,
        temperature=0.1,
        sim_weight=25.0,
        var_weight=25.0,
        cov_weight=1.0,
        pairing="cross",
        renyi_order=2,
        mi_penalty=0.0,
        momentum=None,
        predictor=None,
        rank_definition="singular",
        **kwargs,
    ):
        kwargs.setdefault("name", "adadim")
        super().__init__(**kwargs)
        self.alpha_mode = _check_alpha(alpha)
        self.beta_mode = _check_beta(beta)
        self.gamma = check_number("gamma", gamma, 0.0, 1.0, high_open=True)
        if pairing not in PAIRINGS:
            raise ValueError(f"`pairing` must be one of {PAIRINGS}; got {pairing!r}.")
        self.temperature = check_number("temperature", temperature, 0,
                                        low_open=True)
        self.sim_weight = float(sim_weight)
        self.var_weight = float(var_weight)
        self.cov_weight = float(cov_weight)
        self.pairing = pairing
        self.renyi_order = renyi_order
        self.mi_penalty = check_number("mi_penalty", mi_penalty, 0.0)
        if momentum is not None:
            check_number("momentum", momentum, 0.0, 1.0)
        self.momentum = None if momentum is None else float(momentum)
        self.predictor = predictor
        self.rank_definition = check_rank_definition(rank_definition)
        self.teacher = (
            EMATeacher(self.momentum, 1.0, name="momentum_branch")
            if self.momentum is not None else None
        )
        initial = self.alpha_mode if isinstance(self.alpha_mode, float) else 0.0
        self.alpha = self._scalar("alpha", initial)
        self.beta = self._scalar("beta", self.beta_for(initial))
        self.built = True

    def _scalar(self, name, value):
        return self.add_weight(
            name=name, shape=(), dtype="float32", trainable=False,
            initializer=keras.initializers.Constant(value),
        )

    # ------------------------------------------------------------- alpha
    def beta_for(self, alpha):
        if self.beta_mode == "adaptive":
            return self.gamma * alpha
        return self.beta_mode

    def set_alpha(self, value):
        """Set alpha (and adaptive beta = gamma alpha); no recompilation."""
        value = float(value)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {value}.")
        self.alpha.assign(value)
        self.beta.assign(self.beta_for(value))

    @property
    def adaptive(self):
        """True when alpha is set from the effective rank (AlphaUpdater)."""
        return self.alpha_mode == "adaptive"

    @property
    def has_targets(self):
        return self.teacher is not None

    @property
    def needs_planned_steps(self):
        return self.alpha_mode in ("cosine", "linear") or self.teacher is not None

    def _alpha_beta(self, step):
        if self.alpha_mode in ("cosine", "linear") and step.training:
            p = step.progress
            alpha = p if self.alpha_mode == "linear" else 1.0 - cosine_decay_factor(p)
            self.alpha.assign(alpha)
            self.beta.assign(self.beta_for(alpha))
        alpha = ops.convert_to_tensor(self.alpha)
        if self.beta_mode == "adaptive":
            return alpha, self.gamma * alpha
        return alpha, ops.convert_to_tensor(self.beta)

    def rank_ratio(self, rows):
        """ER(concat(z1, z2)) / min(2b, F) of one forward pass (concat(z1,
        z2t) with a momentum encoder): the alpha estimate of one batch, ER
        taken under ``rank_definition``."""
        z2 = rows["z2t"] if self.teacher is not None else rows["z2"]
        z = ops.stop_gradient(ops.concatenate([rows["z1"], z2], axis=0))
        n, f = z.shape
        er = effective_rank_of(z, self.rank_definition)
        return float(ops.convert_to_numpy(er)) / min(n, f)

    # ---------------------------------------------------------- the step
    # setup, forward, ensure_built and targets: Method's defaults for the
    # optional momentum branch (`self.teacher`) and `self.predictor`.
    def _uses(self):
        """Which terms the configuration needs (static: SimCLR never pays for
        VICReg or L_mut)."""
        a, b = self.alpha_mode, self.beta_mode
        needs_mut = self.mi_penalty != 0 or not (
            (b == "adaptive" and self.gamma == 0) or b == 0.0
        )
        return a != 1.0, a != 0.0, needs_mut

    def loss_terms(self, rows, step=None):
        # One GramCache per step: NT-Xent's similarity matrices hold the
        # normalised Gram matrices of z that L_mut needs (losses.adadim).
        # No NaN checks here (they read the host): the model's guard
        # reports a bad batch.
        use = self._uses()
        grams = GramCache()

        def terms(a, b, mut_rows):
            return adadim_terms(
                a, b, mut_rows, use, self.temperature, self.sim_weight,
                self.var_weight, self.cov_weight, self.pairing,
                self.renyi_order, grams,
            )

        q1, q2 = rows.get("p1", rows["z1"]), rows.get("p2", rows["z2"])
        if self.teacher is None:
            return terms(q1, q2, rows)
        target = {k: rows[k + "t"] for k in ("z1", "z2", "r1", "r2")}
        a = terms(q1, rows["z2t"], rows)
        b = terms(rows["z1t"], q2, target)
        return {k: 0.5 * (a[k] + b[k]) for k in ("vicreg", "nce", "mut")}

    def combine(self, terms, step):
        alpha, beta = self._alpha_beta(step)
        return combine_adadim(
            terms["vicreg"], terms["nce"], terms["mut"], alpha, beta, self.mi_penalty
        )

    def logs(self, step):
        alpha = ops.convert_to_tensor(self.alpha)
        beta = self.gamma * alpha if self.beta_mode == "adaptive" else self.beta
        return {"alpha": alpha, "beta": ops.convert_to_tensor(beta)}

    def load_legacy_state(self, alpha, beta):
        """alpha and beta of a model saved before methods were layers (they
        were the model's own variables then)."""
        self.alpha.assign(alpha)
        self.beta.assign(beta)
        self._legacy_loaded = True

    def load_own_variables(self, store):
        if getattr(self, "_legacy_loaded", False) and not list(store.keys()):
            return  # restored from the model's own variables (old layout)
        super().load_own_variables(store)

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
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
            "predictor": None if self.predictor is None else ser(self.predictor),
            "rank_definition": self.rank_definition,
        }


def _check_alpha(alpha):
    if isinstance(alpha, str):
        if alpha not in ALPHA_MODES:
            raise ValueError(
                f"`alpha` must be a float in [0, 1] or one of {ALPHA_MODES}; got {alpha!r}."
            )
        return alpha
    return check_number("alpha", alpha, 0.0, 1.0)


def _check_beta(beta):
    if isinstance(beta, str):
        if beta != "adaptive":
            raise ValueError(f"`beta` must be 'adaptive' or a float; got {beta!r}.")
        return beta
    # beta >= 1 would flip the sign of the objective ((1 - beta) <= 0).
    return check_number("beta", beta, 0.0, 1.0, high_open=True)
