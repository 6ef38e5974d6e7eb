"""Entropic optimal transport to target clusters with a uniform prior (Sinkhorn).

Optimal-transport label association (in the spirit of MIGOT, 2024, and of the
transport-based pseudo-labelling of SeLa, Asano et al., ICLR 2020) spreads the source samples
over the target clusters under a balance constraint instead of letting each sample pick its
nearest cluster independently. With the cost ``K[i, c] = 1 - (d_i . mu^d_c + s_i . mu^s_c) / 2``
(in ``[0, 2]``; L2-normalised features and target centroids), source mass ``a_i = 1 / N``
(``level="sample"``) and a uniform target prior ``b_c = 1 / C``::

    P* = argmin_{P >= 0, P 1 = a, P^T 1 = b}  <P, K> - epsilon H(P)

solved by log-domain Sinkhorn iterations on the dual potentials ``f, g``::

    f_i = epsilon log a_i - epsilon logsumexp_c ((g_c - K[i, c]) / epsilon)
    g_c = epsilon log b_c - epsilon logsumexp_i ((f_i - K[i, c]) / epsilon)
    log P[i, c] = (f_i + g_c - K[i, c]) / epsilon

and each sample takes ``y_i = argmax_c P[i, c]`` (entries within 0.1% of the maximum are
ties, which the marginals can force; they go to the lowest cost ``K[i, c]``). With
``level="cluster"`` the source units are the source clusters (``src_labels``, mass
proportional to their sizes, centroids as for the target) and every sample inherits its
cluster's label (unclustered samples: -1).

Everything runs in torch on the inputs' device, in float32; memory O(N_src C_tgt)
(``level="sample"``) or O(C_src C_tgt) (``"cluster"``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .._timing import StageTimer
from .._validation import check_choice, check_int, check_real
from ._centroids import branch_centroids, joint_similarity
from .protocol import Association, AssociationResult

__all__ = ["OptimalTransportAssociation", "sinkhorn_log"]

LEVELS = ("sample", "cluster")


def _sinkhorn_steps(
    cost: torch.Tensor,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    f: torch.Tensor,
    g: torch.Tensor,
    epsilon: float,
    steps: int,
    tol: float,
) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """Up to ``steps`` log-domain updates at ``epsilon`` from the potentials ``f, g``."""
    scaled = -cost / epsilon  # [N, C]
    error = math.inf
    done = 0
    for step in range(1, steps + 1):
        done = step
        f = epsilon * (log_a - torch.logsumexp(scaled + g[None, :] / epsilon, dim=1))
        g = epsilon * (log_b - torch.logsumexp(scaled + f[:, None] / epsilon, dim=0))
        log_rows = torch.logsumexp(scaled + (f[:, None] + g[None, :]) / epsilon, dim=1)
        error = float(torch.max(torch.abs(torch.expm1(log_rows - log_a))))
        if error < tol:
            break
    return f, g, done, error


def sinkhorn_log(
    cost: torch.Tensor,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    epsilon: float,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, int, float]:
    """Log-domain Sinkhorn for ``[N, C]`` ``cost`` and log-marginals ``[N]``, ``[C]``.

    Returns ``(log_plan [N, C], iterations, marginal_error)`` where ``marginal_error`` is
    ``max_i |sum_c P[i, c] - a_i| / a_i`` after the last iteration (the column marginals are
    exact after each ``g`` update); iterations stop when it drops below ``tol``.

    Small ``epsilon`` converges slowly from zero potentials (the rate degrades like
    ``exp(-range(cost) / epsilon)``), so the potentials are warm-started by epsilon scaling
    (Schmitzer, SIAM J. Sci. Comput. 2019): a few iterations at ``range(cost)``, halved
    until ``epsilon``; all count towards ``max_iter``.
    """
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    spread = float(cost.max() - cost.min())
    schedule = []
    level = spread
    while level > 2 * epsilon:
        schedule.append(level)
        level /= 2
    used = 0
    for level in schedule:
        f, g, done, _ = _sinkhorn_steps(cost, log_a, log_b, f, g, level, 10, tol)
        used += done
        if used >= max_iter:
            break
    f, g, done, error = _sinkhorn_steps(
        cost, log_a, log_b, f, g, epsilon, max(1, max_iter - used), tol
    )
    log_plan = (f[:, None] + g[None, :] - cost) / epsilon
    return log_plan, used + done, error


TIE_LOG_MARGIN = 1e-3
"""Plan entries within this log-ratio (0.1%) of a row's maximum count as tied."""


def plan_argmax(log_plan: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """``[N]`` column of each row's largest plan entry; ties go to the lowest cost.

    The marginals can force exact ties: with a uniform prior, a unit whose mass is split
    evenly between two clusters that receive mass from it alone has two equal entries.
    Entries within :data:`TIE_LOG_MARGIN` of the row maximum are ties, and the tie goes to
    the most similar cluster (lowest ``cost``), which depends on the data, not on the
    label values or the solver's rounding.
    """
    top = log_plan.max(dim=1, keepdim=True).values
    near = log_plan >= top - TIE_LOG_MARGIN
    return torch.argmin(torch.where(near, cost, torch.full_like(cost, math.inf)), dim=1)


class OptimalTransportAssociation(Association):
    """Source samples (or clusters) -> target clusters by entropic OT with a uniform prior.

    Parameters
    ----------
    epsilon:
        Entropic regularisation (> 0); smaller is closer to the exact transport (and needs
        more iterations).
    max_iter:
        Upper bound on Sinkhorn iterations.
    tol:
        Stop when every source marginal is within this relative error.
    level:
        ``"sample"`` (each source sample is a unit of mass) or ``"cluster"`` (source
        clusters from ``src_labels``; samples inherit their cluster's label).

    ``scores`` of the :class:`AssociationResult` are ``P[i, y_i] / a_i``, the share of the
    unit's mass sent to the chosen cluster (in ``(0, 1]``; NaN where unassigned);
    ``details`` holds ``iterations`` and ``marginal_error``.
    """

    name = "ot"

    def __init__(
        self,
        epsilon: float = 0.05,
        max_iter: int = 200,
        tol: float = 1e-4,
        *,
        level: str = "sample",
    ) -> None:
        self.epsilon = check_real(epsilon, "epsilon", minimum=0.0, min_inclusive=False)
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.tol = check_real(tol, "tol", minimum=0.0, min_inclusive=False)
        self.level = check_choice(level, "level", LEVELS)

    @property
    def needs_src_labels(self) -> bool:  # type: ignore[override]
        return self.level == "cluster"

    def __repr__(self) -> str:
        return (
            f"OptimalTransportAssociation(epsilon={self.epsilon}, max_iter={self.max_iter}, "
            f"tol={self.tol}, level={self.level!r})"
        )

    def associate_tensors(
        self,
        deep_src: torch.Tensor,
        shallow_src: torch.Tensor,
        deep_tgt: torch.Tensor,
        shallow_tgt: torch.Tensor,
        tgt_labels: torch.Tensor,
        src_labels: Optional[torch.Tensor] = None,
    ) -> AssociationResult:
        """Tensor-level association (see :meth:`Association.associate` for the arguments)."""
        self.check_tensor_inputs(
            deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels
        )
        timer = StageTimer(device=deep_src.device)
        normalize = torch.nn.functional.normalize
        with timer.stage("centroids"):
            target = branch_centroids(deep_tgt, shallow_tgt, tgt_labels)
            if self.level == "cluster":
                assert src_labels is not None
                source = branch_centroids(deep_src, shallow_src, src_labels)
                similarity = source.deep @ target.deep.T + source.shallow @ target.shallow.T
                log_a = torch.log(source.sizes.float() / source.sizes.sum())
            else:
                similarity = joint_similarity(
                    normalize(deep_src.float(), dim=1),
                    normalize(shallow_src.float(), dim=1),
                    target,
                )
                n = similarity.shape[0]
                log_a = torch.full((n,), -math.log(n), device=similarity.device)
            c = similarity.shape[1]
            log_b = torch.full((c,), -math.log(c), device=similarity.device)
        with timer.stage("sinkhorn"):
            cost = 1.0 - similarity / 2.0
            log_plan, iterations, error = sinkhorn_log(
                cost, log_a, log_b, self.epsilon, self.max_iter, self.tol
            )
            best = plan_argmax(log_plan, cost)
            unit_scores = torch.exp(log_plan.gather(1, best[:, None]).squeeze(1) - log_a)
        with timer.stage("labels"):
            unit_labels = target.labels[best]
            if self.level == "cluster":
                clustered = source.rows >= 0
                labels = torch.full_like(source.rows, -1)
                labels[clustered] = unit_labels[source.rows[clustered]]
                scores = torch.full(labels.shape, float("nan"), device=labels.device)
                scores[clustered] = unit_scores[source.rows[clustered]]
            else:
                labels, scores = unit_labels, unit_scores
        details = {"iterations": iterations, "marginal_error": error}
        return AssociationResult(labels, scores, dict(timer.seconds), details)
