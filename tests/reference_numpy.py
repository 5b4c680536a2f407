"""Independent NumPy float64 re-implementation of the formulas in SPEC.md.

Written from the SPEC (../shared/SPEC.md), not from the library: explicit
loops where the SPEC speaks of anchors or pairs, SciPy for the SVD and the
symmetric eigen-decompositions. Every function takes array-likes, computes in
float64 and returns a Python float (or a NumPy array where noted).
"""

import math

import numpy as np
import scipy.linalg


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def l2_normalize_rows(x):
    """Each row divided by its Euclidean norm (rows must be non-zero)."""
    x = _f64(x)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def nt_xent(z1, z2, temperature=0.1):
    """NT-Xent: mean over the 2b anchors of
    -log(exp(s_ip / t) / sum_{j != i} exp(s_ij / t)), s = cosine similarity,
    p the other view of the same image."""
    z1, z2 = _f64(z1), _f64(z2)
    b = z1.shape[0]
    z = l2_normalize_rows(np.concatenate([z1, z2], axis=0))
    n = 2 * b
    losses = []
    for i in range(n):
        positive = i + b if i < b else i - b
        sims = [float(z[i] @ z[j]) / temperature for j in range(n) if j != i]
        top = max(sims)
        log_denominator = top + math.log(sum(math.exp(s - top) for s in sims))
        losses.append(log_denominator - float(z[i] @ z[positive]) / temperature)
    return float(np.mean(losses))


def _variance(z, epsilon=1e-4):
    """v(z) = mean over dimensions of max(0, 1 - sqrt(unbiased Var + eps))."""
    z = _f64(z)
    var = np.var(z, axis=0, ddof=1)
    return float(np.mean(np.maximum(0.0, 1.0 - np.sqrt(var + epsilon))))


def _covariance(z):
    """c(z) = (1/F) * sum of squared off-diagonal unbiased covariances."""
    z = _f64(z)
    f = z.shape[1]
    c = np.cov(z, rowvar=False, ddof=1).reshape(f, f)
    total = 0.0
    for i in range(f):
        for j in range(f):
            if i != j:
                total += c[i, j] ** 2
    return total / f


def vicreg_components(z1, z2, epsilon=1e-4):
    """Unweighted VICReg terms: s (MSE), v(z1)+v(z2), c(z1)+c(z2)."""
    z1, z2 = _f64(z1), _f64(z2)
    return {
        "invariance": float(np.mean((z1 - z2) ** 2)),
        "variance": _variance(z1, epsilon) + _variance(z2, epsilon),
        "covariance": _covariance(z1) + _covariance(z2),
    }


def vicreg(z1, z2, sim_weight=25.0, var_weight=25.0, cov_weight=1.0,
           epsilon=1e-4):
    """L = lambda s + mu [v(z1)+v(z2)] + nu [c(z1)+c(z2)]."""
    t = vicreg_components(z1, z2, epsilon)
    return (sim_weight * t["invariance"] + var_weight * t["variance"]
            + cov_weight * t["covariance"])


# --------------------------------------------------------------------------
# Renyi matrix entropy and mutual information
# --------------------------------------------------------------------------


def normalized_gram(x):
    """K = X^ X^T with L2-normalised rows (unit diagonal)."""
    xn = l2_normalize_rows(x)
    return xn @ xn.T


def entropy_of_gram(k, order=2):
    """H_a(K) = 1/(1-a) log tr((K/n)^a); a = 1 is -sum lambda log lambda.

    Uses the eigenvalues of K/n (scipy.linalg.eigvalsh) for every order.
    """
    k = _f64(k)
    n = k.shape[0]
    lam = scipy.linalg.eigvalsh(k / n)
    lam = np.clip(lam, 0.0, None)
    if order == 1:
        nz = lam[lam > 0]
        return float(-np.sum(nz * np.log(nz)))
    return float(np.log(np.sum(lam ** order)) / (1.0 - order))


def renyi_entropy(x, order=2):
    return entropy_of_gram(normalized_gram(x), order)


def renyi2_frobenius(x):
    """H_2(K) = -log(||K||_F^2 / n^2), the SPEC's closed form for order 2."""
    k = normalized_gram(x)
    n = k.shape[0]
    return float(-np.log(np.sum(k ** 2) / n ** 2))


def matrix_mutual_information(x, y, order=2):
    """I(X;Y) = H(K_X) + H(K_Y) - H(K_X o K_Y)."""
    kx, ky = normalized_gram(x), normalized_gram(y)
    return (entropy_of_gram(kx, order) + entropy_of_gram(ky, order)
            - entropy_of_gram(kx * ky, order))


def mutual_information_term(z1, z2, r1, r2, pairing="cross", order=2):
    """L_mut: 1/2[I(z1;r2) + I(z2;r1)] (cross) or 1/2[I(z1;r1) + I(z2;r2)]."""
    if pairing == "cross":
        pairs = [(z1, r2), (z2, r1)]
    elif pairing == "same":
        pairs = [(z1, r1), (z2, r2)]
    else:
        raise ValueError(pairing)
    return 0.5 * sum(matrix_mutual_information(a, b, order) for a, b in pairs)


def adadim_loss(z1, z2, r1=None, r2=None, alpha=0.0, beta=0.0,
                temperature=0.1, pairing="cross", order=2):
    """(1-beta)[(1-alpha) VICReg + alpha NT-Xent] - beta L_mut."""
    loss = (1.0 - beta) * ((1.0 - alpha) * vicreg(z1, z2)
                           + alpha * nt_xent(z1, z2, temperature))
    if beta != 0:
        loss -= beta * mutual_information_term(z1, z2, r1, r2, pairing, order)
    return loss


# --------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------


def effective_rank(x):
    """exp(entropy of the normalised singular values), 0 log 0 = 0."""
    s = scipy.linalg.svdvals(_f64(x))
    p = s / s.sum()
    h = 0.0
    for pk in p:
        if pk > 0:
            h -= pk * math.log(pk)
    return math.exp(h)


def rankme(x, epsilon=1e-7):
    """Effective rank with p + epsilon."""
    s = scipy.linalg.svdvals(_f64(x))
    p = s / s.sum() + epsilon
    return float(math.exp(-np.sum(p * np.log(p))))


def covariance_eigenvalues(x):
    """Eigenvalues of the unbiased covariance, descending, L1-normalised."""
    x = _f64(x)
    c = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
    lam = np.clip(scipy.linalg.eigvalsh(c), 0.0, None)[::-1]
    return lam / lam.sum()


def eigenvalue_count(x, tau=0.01):
    return int(np.sum(covariance_eigenvalues(x) > tau))


def explained_variance_ratio(x, top=0.3):
    """Share held by the top max(1, floor(top * N)) of the N eigenvalues."""
    lam = covariance_eigenvalues(x)
    k = max(1, int(math.floor(top * len(lam) + 1e-9)))
    return float(np.sum(lam[:k]))


def uniformity(x, t=2.0):
    """log mean_{i<j} exp(-t ||x_i - x_j||^2) on L2-normalised rows."""
    x = l2_normalize_rows(x)
    n = x.shape[0]
    terms = []
    for i in range(n):
        for j in range(i + 1, n):
            d2 = float(np.sum((x[i] - x[j]) ** 2))
            terms.append(math.exp(-t * d2))
    return math.log(sum(terms) / len(terms))


def alignment(x, y, alpha=2.0):
    """mean_i ||x^_i - y^_i||^alpha on L2-normalised rows."""
    xn, yn = l2_normalize_rows(x), l2_normalize_rows(y)
    return float(np.mean(np.linalg.norm(xn - yn, axis=1) ** alpha))


def gaussian_mutual_information_from_covariance(sigma, r_dim, ridge=0.0,
                                                rcond=1e-10):
    """1/2 [ln|S_R| + ln|S_Z| - ln|S|]; +inf when a block is singular, i.e.
    its smallest eigenvalue is below ``rcond`` times its largest (a
    relative test, so round-off cannot hide a deterministic dependence)."""
    sigma = _f64(sigma) + ridge * np.eye(len(sigma))
    parts = []
    for block in (sigma[:r_dim, :r_dim], sigma[r_dim:, r_dim:], sigma):
        lam = scipy.linalg.eigvalsh(block)
        if lam[-1] <= 0 or lam[0] <= rcond * lam[-1]:
            return math.inf
        parts.append(float(np.sum(np.log(lam))))
    return 0.5 * (parts[0] + parts[1] - parts[2])


def gaussian_mutual_information(r, z, ridge=0.0):
    r, z = _f64(r), _f64(z)
    joint = np.concatenate([r, z], axis=1)
    sigma = np.cov(joint, rowvar=False, ddof=1)
    return gaussian_mutual_information_from_covariance(
        sigma, r.shape[1], ridge)


# ------------------------------------------------ the compared methods' losses
def negative_cosine_similarity(p, z):
    p, z = l2_normalize_rows(p), l2_normalize_rows(z)
    return float(-np.mean(np.sum(p * z, axis=1)))


def info_nce(q, k, temperature):
    """Row i of q against every row of k, k_i positive (a loop, not matmul)."""
    q, k = l2_normalize_rows(q), l2_normalize_rows(k)
    losses = []
    for i in range(len(q)):
        s = np.array([q[i] @ k[j] for j in range(len(k))]) / temperature
        m = s.max()
        losses.append(m + np.log(np.exp(s - m).sum()) - s[i])
    return float(np.mean(losses))


def barlow_twins(z1, z2, lambda_=0.0051, scale=1.0, epsilon=1e-5):
    z1, z2 = _f64(z1), _f64(z2)
    n = len(z1)
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + epsilon)  # biased variance
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + epsilon)
    c = a.T @ b / n
    on = np.sum((1.0 - np.diag(c)) ** 2)
    off = np.sum(c ** 2) - np.sum(np.diag(c) ** 2)
    return float(scale * (on + lambda_ * off))


def nearest_neighbours(z, support):
    zn, s = l2_normalize_rows(z), l2_normalize_rows(support)
    return s[np.argmax(zn @ s.T, axis=1)]


def nnclr(z1, z2, p1, p2, support, temperature):
    nn1, nn2 = nearest_neighbours(z1, support), nearest_neighbours(z2, support)
    return 0.5 * (info_nce(nn1, p2, temperature) + info_nce(nn2, p1, temperature))


def moco_info_nce(q, k, queue, temperature):
    """MoCo's InfoNCE: row i of q against its key k_i (class 0) and every
    queue row (a loop over the logits [l+, l-_1, .., l-_K], not matmul)."""
    q, k, queue = l2_normalize_rows(q), l2_normalize_rows(k), l2_normalize_rows(queue)
    losses = []
    for i in range(len(q)):
        s = np.array([q[i] @ k[i]] + [q[i] @ n for n in queue]) / temperature
        m = s.max()
        losses.append(m + np.log(np.exp(s - m).sum()) - s[0])
    return float(np.mean(losses))


def mocov2plus(z1, z2, z1t, z2t, queue1, queue2, temperature):
    """MoCo v2+ (solo-learn): q1 with k2 against the view-2 queue, q2 with
    k1 against the view-1 queue, averaged."""
    return 0.5 * (moco_info_nce(z1, z2t, queue2, temperature)
                  + moco_info_nce(z2, z1t, queue1, temperature))


# --------------------------------------------------------------------------
# Clustering and self-distillation losses (SwAV, DINO, ReSSL, DeepCluster v2)
# --------------------------------------------------------------------------


def _log_softmax_row(x):
    m = max(x)
    return np.array([v - m - math.log(sum(math.exp(u - m) for u in x)) for v in x])


def _softmax_row(x):
    return np.exp(_log_softmax_row(x))


def _cross_entropy_rows(targets, logits):
    """Mean over rows n of -sum_k targets[n, k] log softmax(logits[n])_k."""
    targets, logits = _f64(targets), _f64(logits)
    return float(np.mean([-(t * _log_softmax_row(row)).sum()
                          for t, row in zip(targets, logits)]))


def sinkhorn_knopp(scores, epsilon=0.05, iterations=3):
    """SwAV's distributed_sinkhorn on one device: Q = exp(S / eps)^T (K, b),
    scaled to total mass 1, then per iteration every prototype row to mass
    1/K and every sample column to mass 1/b (explicit loops); returns
    b Q^T (b, K)."""
    s = _f64(scores)
    b, k = s.shape
    q = np.array([[math.exp(s[n, j] / epsilon) for n in range(b)] for j in range(k)])
    q = q / q.sum()
    for _ in range(iterations):
        for j in range(k):
            q[j] = q[j] / q[j].sum() / k
        for n in range(b):
            q[:, n] = q[:, n] / q[:, n].sum() / b
    return (q * b).T


def swav(scores, codes, temperature):
    """Swapped prediction: mean over pairs (i with codes, v != i) of the
    cross-entropy of codes[i] with softmax(scores[v] / T)."""
    losses = [_cross_entropy_rows(q, _f64(scores[v]) / temperature)
              for i, q in enumerate(codes) for v in range(len(scores)) if v != i]
    return float(np.mean(losses))


def dino(student, teacher, center, student_temperature, teacher_temperature):
    """DINO: teacher crop i's centred, sharpened softmax as the target of
    every other student crop's softmax(s / T_s); mean over the pairs."""
    targets = [np.array([_softmax_row((row - _f64(center)) / teacher_temperature)
                         for row in _f64(t)]) for t in teacher]
    losses = [_cross_entropy_rows(q, _f64(student[v]) / student_temperature)
              for i, q in enumerate(targets) for v in range(len(student)) if v != i]
    return float(np.mean(losses))


def ressl(student, teacher, queue, student_temperature, teacher_temperature):
    """ReSSL: the teacher's similarities to the queue, sharpened by T_t, are
    the target of the student's (T_s), cosine similarities; mean over the
    student crops."""
    k = l2_normalize_rows(teacher)
    neg = l2_normalize_rows(queue)
    target = np.array([_softmax_row([k[n] @ m / teacher_temperature for m in neg])
                       for n in range(len(k))])
    losses = []
    for crop in student:
        q = l2_normalize_rows(crop)
        logits = np.array([[q[n] @ m / student_temperature for m in neg]
                           for n in range(len(q))])
        losses.append(_cross_entropy_rows(target, logits))
    return float(np.mean(losses))


def deepclusterv2(scores, assignments, temperature):
    """DeepCluster v2: per head h, cross-entropy of every crop's
    softmax(scores / T) with the head's cluster index of each sample
    (a one-hot target), over crops and the samples with a cluster (-1:
    none, ignored; a head with none gives 0); mean over heads."""
    heads = []
    for crops, labels in zip(scores, assignments):
        terms = []
        for s in crops:
            for row, c in zip(_f64(s), labels):
                if int(c) >= 0:
                    terms.append(-_log_softmax_row(row / temperature)[int(c)])
        heads.append(np.mean(terms) if terms else 0.0)
    return float(np.mean(heads))
