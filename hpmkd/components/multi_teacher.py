"""``AttentionWeightedMultiTeacher``: fuse several probability sources per sample.

Member ``i`` gets, for each row ``x``, an attention logit

    s_i(x) = b_i + w_conf * conf_i(x) + w_agree * agree_i(x)

where ``conf_i`` is the member's largest class probability and ``agree_i`` is
``1 - TV(p_i(x), mean_j p_j(x))`` (its agreement with the others). The weights are
``softmax_i s_i(x)`` and the fused distribution is ``sum_i weight_i(x) p_i(x)``. The
parameters ``b`` (one per member) and the two slopes are fitted on the validation split
by minimising the log-loss of the fused distribution (L-BFGS, small L2 penalty), so a
member that is wrong on validation loses weight and a member that is reliable when it
is confident gains weight where it is confident. The fitted weights then fuse the
members' probabilities on the training rows into soft targets for students.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

_EPS = 1e-12


class AttentionWeightedMultiTeacher:
    """Per-sample attention over several members' class probabilities.

    Parameters
    ----------
    l2 : float, default 1e-3
        L2 penalty on the attention parameters.

    Attributes
    ----------
    bias_ : ndarray of shape (n_members,)
    slopes_ : ndarray of shape (2,)
        Weights of confidence and agreement.
    mean_weights_ : ndarray of shape (n_members,)
        Mean attention weight of each member on the validation rows.
    """

    def __init__(self, l2: float = 1e-3) -> None:
        self.l2 = l2

    @staticmethod
    def _features(probas: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        stack = np.stack([np.asarray(p, dtype=float) for p in probas])  # (m, n, k)
        conf = stack.max(axis=2)
        mean = stack.mean(axis=0, keepdims=True)
        agree = 1.0 - 0.5 * np.abs(stack - mean).sum(axis=2)
        return stack, np.stack([conf, agree], axis=2)  # (m, n, 2)

    def _weights(self, params: np.ndarray, feats: np.ndarray) -> np.ndarray:
        m = feats.shape[0]
        logits = params[:m, None] + feats @ params[m:]
        logits -= logits.max(axis=0, keepdims=True)
        w = np.exp(logits)
        return w / w.sum(axis=0, keepdims=True)  # (m, n)

    def fit(self, probas: list[np.ndarray], y: np.ndarray) -> AttentionWeightedMultiTeacher:
        """Fit the attention parameters on validation probabilities and labels.

        Parameters
        ----------
        probas : list of arrays (n_samples, n_classes)
            One per member, same rows and class order.
        y : array of int
            Class indices of the rows.
        """
        stack, feats = self._features(probas)
        m = stack.shape[0]
        y = np.asarray(y, dtype=int)
        rows = np.arange(len(y))
        chosen = stack[:, rows, y]  # (m, n): each member's probability of the true class

        def loss(params: np.ndarray) -> float:
            w = self._weights(params, feats)
            fused = np.clip((w * chosen).sum(axis=0), _EPS, 1.0)
            return float(-np.mean(np.log(fused)) + self.l2 * np.sum(params**2))

        result = minimize(loss, np.zeros(m + 2), method="L-BFGS-B")
        self.params_ = result.x
        self.bias_ = result.x[:m]
        self.slopes_ = result.x[m:]
        self.n_members_ = m
        self.mean_weights_ = self._weights(result.x, feats).mean(axis=1)
        self.val_log_loss_ = float(result.fun - self.l2 * np.sum(result.x**2))
        return self

    def weights(self, probas: list[np.ndarray]) -> np.ndarray:
        """Attention weights, shape (n_members, n_samples)."""
        _, feats = self._features(probas)
        return self._weights(self.params_, feats)

    def fuse(self, probas: list[np.ndarray]) -> np.ndarray:
        """Fused class probabilities, shape (n_samples, n_classes)."""
        stack, feats = self._features(probas)
        w = self._weights(self.params_, feats)
        fused = np.einsum("mn,mnk->nk", w, stack)
        return fused / fused.sum(axis=1, keepdims=True)
