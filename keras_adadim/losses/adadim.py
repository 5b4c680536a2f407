"""The AdaDim objective (SPEC: AdaDim; paper Eq. 5 and Algorithm 1)."""

import keras
from keras import ops

from keras_adadim import _backend as hot
from keras_adadim._validation import as_matrix
from keras_adadim._validation import check_same_rows
from keras_adadim._validation import check_same_shape
from keras_adadim.losses.nt_xent import nt_xent_of_blocks
from keras_adadim.losses.nt_xent import nt_xent_of_gram
from keras_adadim.losses.nt_xent import pair_gram
from keras_adadim.losses.vicreg import centre_views
from keras_adadim.losses.vicreg import uses_sample_gram
from keras_adadim.losses.vicreg import vicreg_of_views
from keras_adadim.metrics.entropy import gram_mutual_information
from keras_adadim.metrics.entropy import inverse_row_norms_of_squares
from keras_adadim.metrics.entropy import l2_normalize_rows
from keras_adadim.metrics.entropy import matrix_mutual_information

PAIRINGS = ("cross", "same")


def mutual_information_term(z1, z2, r1, r2, pairing="cross", order=2):
    """L_mut, the Renyi mutual information between embeddings and
    representations of a batch::

        cross (Algorithm 1):  L_mut = 1/2 [I(z1; r2) + I(z2; r1)]
        same:                 L_mut = 1/2 [I(z1; r1) + I(z2; r2)]

    ``I`` is :func:`keras_adadim.metrics.matrix_mutual_information` of
    Renyi order ``order``.
    """
    if pairing not in PAIRINGS:
        raise ValueError(
            f"`pairing` must be one of {PAIRINGS}; got {pairing!r}."
        )
    if pairing == "cross":
        pairs = ((z1, r2), (z2, r1))
    else:
        pairs = ((z1, r1), (z2, r2))
    return 0.5 * sum(
        matrix_mutual_information(z, r, order=order) for z, r in pairs
    )


class GramCache:
    """Normalised Gram matrices ``K = x^ x^T`` of a step's embeddings, each
    computed once: :meth:`pair` makes NT-Xent's (2b, 2b) similarity matrix
    of two views and keeps its diagonal blocks as the K of each view, which
    L_mut's ``I(z; r)`` then reads instead of normalising z and multiplying
    again (the blocks are K_z1 and K_z2: the rows of z are L2-normalised one
    by one); :meth:`keep_pair` keeps blocks a caller built itself. No value
    checks: for a training step, whose bad batches the model reports (its
    inputs come from the model)."""

    def __init__(self):
        self._grams = {}
        self._stacks = {}

    def pair(self, a, b, concat=None):
        """``pair_gram(a, b)`` (from ``concat = concatenate([a, b])`` in
        float32 when given); keeps ``K_a = G[:b, :b]`` and ``K_b = G[b:,
        b:]``."""
        if concat is None:
            g = pair_gram(a, b)
        else:
            zn = l2_normalize_rows(concat)
            g = ops.matmul(zn, ops.transpose(zn))
        n = ops.shape(a)[0]
        self._keep(a, g[:n, :n])
        self._keep(b, g[n:, n:])
        return g

    def keep_pair(self, a, b, blocks):
        """Keep ``blocks`` = ``stack([K_a, K_b])`` (2, n, n), made by the
        caller, as the K of ``a`` and ``b`` (:meth:`both` then returns the
        stack itself: no slicing, each slice and its gradient being a pass
        over the block on TensorFlow)."""
        self._keep(a, blocks[0])
        self._keep(b, blocks[1])
        self._stacks[(id(a), id(b))] = (a, b, blocks)

    def of(self, x):
        """``normalized_gram(x)``, from a kept block when there is one."""
        hit = self._grams.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        xn = l2_normalize_rows(ops.cast(x, "float32"))
        k = ops.matmul(xn, ops.transpose(xn))
        self._keep(x, k)
        return k

    def both(self, x1, x2):
        """``stack([of(x1), of(x2)])``: the kept stack when ``x1, x2`` were
        paired with their blocks given."""
        hit = self._stacks.get((id(x1), id(x2)))
        if hit is not None and hit[0] is x1 and hit[1] is x2:
            return hit[2]
        return ops.stack([self.of(x1), self.of(x2)])

    def _keep(self, x, k):
        # The tensor is kept with its Gram, so its id cannot be reused.
        self._grams[id(x)] = (x, k)


def centred_and_cosine_grams(zs, centred, views):
    """VICReg's and NT-Xent's b x b products of the two views ``zs``
    (2, b, F) from three b x b x F matrix products instead of six::

        Gc_v = zc_v zc_v^T                     (VICReg, sample Gram per view)
        z_v z_v^T = Gc_v + a 1^T + 1 a^T,  a = zc_v m_v^T + |m_v|^2 / 2
        W_v = z^_v z^_v^T,  C = z^_1 z^_2^T    (z^: rows L2-normalised)

    W_1, W_2 and C are the blocks of NT-Xent's similarity matrix
    ``[[W_1, C], [C^T, W_2]]``, which is never formed
    (:func:`~keras_adadim.losses.nt_xent.nt_xent_of_blocks`). ``centred``
    is ``(zc, m) = centre_views(zs)`` and ``views`` = ``(z1, z2)``, the
    (b, F) views ``zs`` stacks (read instead of slicing ``zs``, see
    :func:`~keras_adadim.losses.vicreg.vicreg_of_views`).

    Precision: the uncentred W_v are rebuilt by adding to the centred Gram,
    which does not cancel when the views collapse onto their mean
    (building the centred Gram from W instead would). What cancels here is
    a row much shorter than its view's mean row: W_v[i, j] carries an
    absolute error ~1e-7 |m|^2 / (|z_i| |z_j|) (float32), round-off unless
    |z_i| << |m|. An all-zero row (a dead unit of a ReLU head) gets exactly
    zero similarities, as in :func:`~keras_adadim.losses.nt_xent.pair_gram`.

    Returns a dict: ``centred`` Gc (2, b, b), ``within`` W (2, b, b),
    ``cross`` C (b, b) and ``positives`` its diagonal (b,).
    """
    # `@` and arithmetic operators rather than ops.matmul / ops.where: the
    # same kernels, without Keras's per-call dispatch, which dominates this
    # step's cost on eager PyTorch (benchmarks/README.md).
    zc, mean = centred
    gc = zc @ hot.hot_swapaxes(zc, -1, -2)
    # a_i + |m|^2 / 2, added on both sides: (2, b, 1) work instead of one
    # more (2, b, b) pass; a product and a sum rather than a batched matmul
    # (fewer ops and backward nodes). Not (z_i - m / 2) . m: one sum less,
    # but it loses a digit when rows are short against the mean.
    a = hot.hot_sum(zc * mean, axis=-1, keepdims=True) + 0.5 * hot.hot_sum(
        mean * mean, axis=-1, keepdims=True)  # (2, b, 1)
    within = gc + a + hot.hot_swapaxes(a, -1, -2)
    # Zero for an all-zero row: its rebuilt products are round-off of the
    # mean's, which 1 / ||z_i|| would blow up.
    sq = hot.hot_sum(zs * zs, axis=-1, keepdims=True)  # (2, b, 1)
    inv = inverse_row_norms_of_squares(sq) * ops.cast(sq > 0, sq.dtype)
    inv_t = hot.hot_swapaxes(inv, -1, -2)
    within = within * inv * inv_t
    z1, z2 = views
    # Scaled after the product: b x b entries rather than 2 b F (b < F).
    cross = (z1 @ ops.transpose(z2)) * inv[0] * inv_t[1]
    return {
        "centred": gc,
        "within": within,
        "cross": cross,
        "positives": ops.diagonal(cross),
    }


def adadim_terms(
    q1,
    q2,
    rows=None,
    use=(True, True, True),
    temperature=0.1,
    sim_weight=25.0,
    var_weight=25.0,
    cov_weight=1.0,
    pairing="cross",
    order=2,
    grams=None,
):
    """AdaDim's three terms of one pair of views, for a training step::

        vicreg = L_VICReg(q1, q2)     nce = L_NCE(q1, q2)
        mut    = L_mut(z1, z2, r1, r2) of ``rows`` (``mutual_information_term``)

    ``use`` says which of (vicreg, nce, mut) to compute; the others are 0.
    Equal to the separate functions up to float32 round-off, with the work
    they share done once:

    - VICReg takes both views stacked, (2, b, F): one chain of ops;
    - when b < F, VICReg's covariance term comes from the b x b Gram
      matrices of the centred views and the blocks of NT-Xent's similarity
      matrix are built from those same products
      (:func:`centred_and_cosine_grams`): three b x b x F products in all,
      where VICReg's F x F covariance alone is 2 b F^2 multiply-adds (8x
      NT-Xent's with the paper's b = 256, F = 2048); NT-Xent is taken from
      the blocks (``nt_xent_of_blocks``), the (2b, 2b) matrix never formed;
    - NT-Xent's similarity matrix of the 2b normalised views holds K_z1 and
      K_z2 of L_mut when ``q`` is ``z`` (no predictor): one normalisation and
      one product instead of three of each (:class:`GramCache`);
    - L_mut's two I(z; r) are taken on stacked (2, b, b) Gram matrices, and
      H_2 is a Frobenius norm (SPEC), no eigen-decomposition.

    No NaN/Inf checks (they read the host; a sync per check on PyTorch): the
    model's bad-batch guard reports a non-finite loss.

    Args:
        q1, q2: the views compared by VICReg and NT-Xent (b, F).
        rows: dict with ``z1, z2, r1, r2`` (needed when ``use[2]``).
        grams: a :class:`GramCache` shared between calls of one step.

    Returns:
        dict ``vicreg``, ``nce``, ``mut`` of float32 scalars.
    """
    use_vic, use_nce, use_mut = use
    grams = GramCache() if grams is None else grams
    zero = ops.zeros((), "float32")
    v = n = m = zero
    shared = None
    if use_vic or use_nce:
        check_same_shape(q1, q2, "q1", "q2")
        views = (ops.cast(q1, "float32"), ops.cast(q2, "float32"))
    if use_vic:
        zs = hot.hot_stack(views)  # (2, b, F): both views in one chain of ops
        centred = centre_views(zs)
        if use_nce and uses_sample_gram(zs.shape[1], zs.shape[2]):
            shared = centred_and_cosine_grams(zs, centred, views)
        v = vicreg_of_views(
            zs, centred=centred, views=views,
            sample_gram=None if shared is None else shared["centred"],
            weights=(sim_weight, var_weight, cov_weight),
        )
    if use_nce:
        if shared is None:
            concat = ops.concatenate(views, axis=0)
            n = nt_xent_of_gram(grams.pair(q1, q2, concat), temperature)
        else:
            grams.keep_pair(q1, q2, shared["within"])
            n = nt_xent_of_blocks(
                shared["within"], shared["cross"], temperature,
                shared["positives"],
            )
    if use_mut:
        if pairing not in PAIRINGS:
            raise ValueError(
                f"`pairing` must be one of {PAIRINGS}; got {pairing!r}."
            )
        z1, z2, r1, r2 = rows["z1"], rows["z2"], rows["r1"], rows["r2"]
        if pairing == "cross":
            r1, r2 = r2, r1
        kz = grams.both(z1, z2)
        rn = l2_normalize_rows(
            hot.hot_stack([ops.cast(r1, "float32"), ops.cast(r2, "float32")])
        )
        kr = rn @ hot.hot_swapaxes(rn, -1, -2)
        i = gram_mutual_information(kz, kr, order, unit_diagonal=True)
        m = hot.hot_sum(i) * 0.5
    return {"vicreg": v, "nce": n, "mut": m}


def combine_adadim(vicreg_loss, nce_loss, mut, alpha, beta, mi_penalty=0.0):
    """The AdaDim combination of precomputed terms (paper Eq. 5)::

        L = (1 - beta) * [(1 - alpha) * L_VICReg + alpha * L_NCE]
            - beta * L_mut + mi_penalty * L_mut

    alpha = 0 is pure VICReg, alpha = 1 pure SimCLR; the minus sign on
    ``beta`` raises I(R; Z). ``mi_penalty`` (lambda) is the "+lambda I(R; Z)"
    term of the SimCLR+lambda / VICReg+lambda baselines, 0 for AdaDim.
    """
    ssl = (1.0 - alpha) * vicreg_loss + alpha * nce_loss
    loss = (1.0 - beta) * ssl - beta * mut
    if isinstance(mi_penalty, (int, float)) and mi_penalty == 0:
        return loss  # AdaDim's case: two ops fewer (a dispatch each on PyTorch)
    return loss + mi_penalty * mut


def adadim_loss(
    z1,
    z2,
    r1=None,
    r2=None,
    alpha=0.0,
    beta=0.0,
    temperature=0.1,
    sim_weight=25.0,
    var_weight=25.0,
    cov_weight=1.0,
    pairing="cross",
    order=2,
    mi_penalty=0.0,
    return_components=False,
):
    """The AdaDim loss of one batch::

        L = (1 - beta) [(1 - alpha) L_VICReg(z1, z2) + alpha L_NCE(z1, z2)]
            - beta L_mut(z, r) + mi_penalty L_mut(z, r)

    With ``beta = gamma * alpha`` ("adaptive beta", gamma = 1e-4) and
    ``alpha = ER(concat(z1, z2)) / min(2b, F)`` this is the paper's method;
    see :func:`combine_adadim`, :func:`~keras_adadim.losses.vicreg`,
    :func:`~keras_adadim.losses.nt_xent` and :func:`mutual_information_term`.

    Args:
        z1, z2: embeddings (b, F) of the two views.
        r1, r2: representations (b, d) of the two views; needed when
            ``beta != 0`` or ``mi_penalty != 0``.
        alpha, beta: mixing weights (floats or scalar tensors).
        return_components: also return a dict with ``vicreg``, ``nce``,
            ``mut`` and ``loss``.

    Example:
    >>> z1, z2 = np.random.rand(8, 4), np.random.rand(8, 4)
    >>> bool(np.isclose(adadim_loss(z1, z2, alpha=1.0), nt_xent(z1, z2)))
    True
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")
    z1 = as_matrix(z1, "z1", min_rows=2)
    z2 = as_matrix(z2, "z2", min_rows=2)
    check_same_shape(z1, z2, "z1", "z2")
    needs_mut = not (_is_zero(beta) and _is_zero(mi_penalty))
    rows = None
    if needs_mut:
        if r1 is None or r2 is None:
            raise ValueError(
                "`r1` and `r2` (the encoder outputs) are required when "
                "`beta` or `mi_penalty` is non-zero: L_mut measures I(R; Z)."
            )
        r1, r2 = as_matrix(r1, "r1"), as_matrix(r2, "r2")
        check_same_rows(z1, r1, "z1", "r1")
        check_same_rows(z2, r2, "z2", "r2")
        rows = {"z1": z1, "z2": z2, "r1": r1, "r2": r2}
    terms = adadim_terms(
        z1, z2, rows, (True, True, needs_mut), temperature, sim_weight,
        var_weight, cov_weight, pairing, order,
    )
    v_loss, n_loss, mut = terms["vicreg"], terms["nce"], terms["mut"]
    loss = combine_adadim(v_loss, n_loss, mut, alpha, beta, mi_penalty)
    if return_components:
        return loss, {"loss": loss, "vicreg": v_loss, "nce": n_loss, "mut": mut}
    return loss


def _is_zero(value):
    return isinstance(value, (int, float)) and value == 0


@keras.saving.register_keras_serializable(package="keras_adadim")
class AdaDimLoss(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`adadim_loss` with fixed
    alpha and beta, on embeddings only (no L_mut); call as
    ``AdaDimLoss(alpha=0.5)(z1, z2)``. The adaptive method with L_mut lives
    in :class:`keras_adadim.AdaDimModel`."""

    def __init__(
        self, alpha=0.5, temperature=0.1, name="adadim_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.alpha = alpha
        self.temperature = temperature

    def call(self, y_true, y_pred):
        return adadim_loss(
            y_true, y_pred, alpha=self.alpha, temperature=self.temperature
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "temperature": self.temperature,
        }
