"""VICReg: variance-invariance-covariance regularisation (Bardes et al.)."""

import keras
from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape


def _dof(z):
    """b - 1 for the unbiased estimates. The batch size may be dynamic (a
    traced partial batch); clamping at 1 keeps a traced batch of one finite,
    and AdaDimModel skips such a batch (eager calls reject it up front)."""
    n = ops.cast(ops.shape(z)[0], "float32")
    return ops.maximum(n - 1.0, 1.0)


def _variance_term(z, epsilon):
    """v(z) = mean_j max(0, 1 - sqrt(Var_j(z) + eps)), unbiased variance."""
    zc = z - ops.mean(z, axis=0, keepdims=True)
    var = ops.sum(ops.square(zc), axis=0) / _dof(z)
    std = ops.sqrt(var + epsilon)
    return ops.mean(ops.relu(1.0 - std))


def _covariance_term(z):
    """c(z) = (1/F) sum_{i != j} C_ij^2, C the unbiased covariance."""
    f = z.shape[1]
    zc = z - ops.mean(z, axis=0, keepdims=True)
    cov = ops.matmul(ops.transpose(zc), zc) / _dof(z)
    off_diagonal = cov * (1.0 - ops.eye(f, dtype=cov.dtype))
    return ops.sum(ops.square(off_diagonal)) / f


def vicreg_components(z1, z2, epsilon=1e-4):
    """The three unweighted VICReg terms of a batch::

        invariance s = mean over all b*F entries of (z1 - z2)^2
        variance     = v(z1) + v(z2),  v(z) = mean_j relu(1 - sqrt(Var_j z + eps))
        covariance   = c(z1) + c(z2),  c(z) = (1/F) sum_{i!=j} C_ij(z)^2

    Variance and covariance are unbiased (divide by b - 1), so b >= 2.
    Returns a dict with keys ``invariance``, ``variance``, ``covariance``.
    """
    z1 = as_matrix(z1, "z1", min_rows=2)
    z2 = as_matrix(z2, "z2", min_rows=2)
    check_same_shape(z1, z2, "z1", "z2")
    return {
        "invariance": ops.mean(ops.square(z1 - z2)),
        "variance": _variance_term(z1, epsilon) + _variance_term(z2, epsilon),
        "covariance": _covariance_term(z1) + _covariance_term(z2),
    }


def vicreg(
    z1,
    z2,
    sim_weight=25.0,
    var_weight=25.0,
    cov_weight=1.0,
    epsilon=1e-4,
    return_components=False,
):
    """VICReg loss, in the paper's convention (not halved, as solo-learn)::

        L = lambda * s + mu * [v(z1) + v(z2)] + nu * [c(z1) + c(z2)]

    with lambda = ``sim_weight`` = 25, mu = ``var_weight`` = 25,
    nu = ``cov_weight`` = 1; see :func:`vicreg_components` for s, v and c.

    Args:
        z1, z2: embeddings of the two views, (b, F) with b >= 2.
        return_components: also return the dict of unweighted terms.

    Returns:
        The scalar loss, or ``(loss, components)``.
    """
    terms = vicreg_components(z1, z2, epsilon=epsilon)
    loss = (
        sim_weight * terms["invariance"]
        + var_weight * terms["variance"]
        + cov_weight * terms["covariance"]
    )
    return (loss, terms) if return_components else loss


@keras.saving.register_keras_serializable(package="keras_adadim")
class VICReg(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`vicreg`; call as
    ``VICReg()(z1, z2)``."""

    def __init__(
        self,
        sim_weight=25.0,
        var_weight=25.0,
        cov_weight=1.0,
        epsilon=1e-4,
        name="vicreg",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.sim_weight = sim_weight
        self.var_weight = var_weight
        self.cov_weight = cov_weight
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        return vicreg(
            y_true,
            y_pred,
            self.sim_weight,
            self.var_weight,
            self.cov_weight,
            self.epsilon,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "cov_weight": self.cov_weight,
            "epsilon": self.epsilon,
        }
