"""The model's linear predictor in NumPy, for every posterior draw at once.

The PyMC graph (:func:`scsurvey.model.graph.build`) is what is fitted; after the fit the same
predictor is needed outside it: the integrated likelihood integrates over the residual around
each respondent's mean trait, MRP predicts census cells, summaries predict profiles. They all
evaluate it here, and the tests hold it equal to the graph's.

For respondent (or cell) i, battery b and item j of battery b(j)::

    mean_ib = x_i' beta_b + sum_g u^g_{g[i], b}            (trait_mean)
    eta_ij  = lambda_j * theta_{i, b(j)} + x_i' delta_j     (eta, item_offset)

with theta the mean plus the respondent's residual. Simulation from the model (the twin, the
MRP validation) goes through the graph itself, :func:`evaluate_graph`, so that simulated data
come from exactly the model that is fitted.
"""

from __future__ import annotations

import numpy as np


def trait_mean(
    n: int,
    n_batteries: int,
    beta: np.ndarray | None = None,
    x: np.ndarray | None = None,
    groups: list[tuple[np.ndarray, np.ndarray]] = (),
) -> np.ndarray:
    """The covariate and group part of each latent trait.

    Parameters
    ----------
    n : int
        Respondents (or cells).
    n_batteries : int
    beta : ndarray, shape (sample, battery, covariate), optional
        Covariate effects.
    x : ndarray, shape (n, covariate), optional
        Standardised covariate values, in ``beta``'s covariate order.
    groups : list of (u, index)
        Per grouping factor: its intercepts ``u`` (sample, battery, level) and each
        respondent's level ``index`` (n,).

    Returns
    -------
    ndarray, shape (sample, n, battery)
    """
    n_s = next((a.shape[0] for a in [beta, *(u for u, _ in groups)] if a is not None), 1)
    mean = np.zeros((n_s, n, n_batteries))
    if beta is not None:
        mean += np.einsum("sbp,ip->sib", beta, x)
    for u, index in groups:
        mean += np.transpose(u[:, :, index], (0, 2, 1))
    return mean


def item_offset(delta: np.ndarray | None, x: np.ndarray | None, n: int, n_items: int) -> np.ndarray:
    """Item-specific covariate effects ``x_i' delta_j``.

    Parameters
    ----------
    delta : ndarray, shape (sample, item_covariate, item), optional
    x : ndarray, shape (n, item_covariate), optional
        Standardised values of the item covariates, in ``delta``'s order.
    n, n_items : int

    Returns
    -------
    ndarray, shape (sample, n, item); zeros (one sample) without ``delta``
    """
    if delta is None:
        return np.zeros((1, n, n_items))
    return np.einsum("ip,spj->sij", x, delta)


def eta(lam: np.ndarray, theta: np.ndarray, col: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """The linear predictor of every item.

    Parameters
    ----------
    lam : ndarray, shape (sample, item) or (sample, n, item)
        Discriminations (per respondent with non-uniform DIF).
    theta : ndarray, shape (sample, n, battery)
        Latent traits.
    col : ndarray, shape (item,)
        Each item's battery position.
    offset : ndarray, shape (sample, n, item), optional
        :func:`item_offset`.

    Returns
    -------
    ndarray, shape (sample, n, item)
    """
    out = (lam[:, None, :] if lam.ndim == 2 else lam) * theta[:, :, col]
    return out if offset is None else out + offset


def evaluate_graph(built, values: dict[str, np.ndarray], extra: tuple[str, ...] = ()) -> tuple:
    """The graph's ``eta`` (respondent, item) and ``cuts`` (item, threshold) with its random
    variables fixed to ``values`` (names the model does not have are ignored).

    Parameters
    ----------
    built : scsurvey.model.graph.BuiltModel
    values : dict
        Values of the model's random variables (``z_respondent``, ``beta``, ...).
    extra : tuple of str
        Other named variables of the model (``theta``), returned after the two.
    """
    import pytensor
    import pytensor.tensor as pt

    model = built.model
    replace = {
        model[name]: pt.constant(np.asarray(v, dtype=model[name].dtype))
        for name, v in values.items()
        if name in model.named_vars
    }
    outputs = pytensor.clone_replace([built.eta, built.cuts, *(model[name] for name in extra)], replace)
    return tuple(pytensor.function([], outputs, mode="FAST_COMPILE")())
