"""Surrogates with uncertainty behind one scikit-learn-style interface (see :mod:`.base`).

``make_surrogate(name, random_state=..., default_space=..., **params)`` builds one by name:

========================  =====================================================================
``gp``                    exact GP per output (BoTorch ``SingleTaskGP``), ``encoder="global"``;
                          ``kernel="linear+matern", encoder="cost"``: Bayesian linear cost model
                          plus a smooth correction on 7 cost features (best on small, noisy data)
``dt``                    one multi-output decision tree, no uncertainty (``supports_std=False``)
``bdt``                   bootstrap ensemble of gradient-boosted trees, calibrated std, ``encoder="global"``
``boshnas``               teacher/student/NPN networks; GOBI query selection
``protran-adaboost``      the original ProTran method: AdaBoost over 500 trees on the raw embedding
``rf``                    random forest, std from the trees' spread, ``encoder="layers"`` (positional)
``ensemble``              equal-weight mixture of named surrogates (default: BDT on raw + log targets)
========================  =====================================================================

All of them take ProTran embeddings ``(n, 37)`` as ``X`` by default (``encoder`` parameter:
``features``/``global``/``cost`` encode them with :class:`~protran_tune.space.FeatureEncoder`, ``embedding``
uses them raw, ``identity`` takes any numeric matrix; ``accuracy`` and ``layers`` are the accuracy sets)
and targets ``Y`` (n, k).
"""

from __future__ import annotations

from typing import Any, Callable

from protran_tune.surrogates.base import EncodedSurrogate, Surrogate, check_xy


def _gp() -> type:
    from protran_tune.surrogates.gp import GaussianProcessSurrogate

    return GaussianProcessSurrogate


def _dt() -> type:
    from protran_tune.surrogates.tree import DecisionTreeSurrogate

    return DecisionTreeSurrogate


def _bdt() -> type:
    from protran_tune.surrogates.bdt import BoostedTreesSurrogate

    return BoostedTreesSurrogate


def _boshnas() -> type:
    from protran_tune.surrogates.boshnas import BOSHNASSurrogate

    return BOSHNASSurrogate


def _rf() -> type:
    from protran_tune.surrogates.tree import RandomForestSurrogate

    return RandomForestSurrogate


def _ensemble() -> type:
    from protran_tune.surrogates.ensemble import EnsembleSurrogate

    return EnsembleSurrogate


def _adaboost() -> type:
    from protran_tune.surrogates.tree import ProTranAdaBoostSurrogate

    return ProTranAdaBoostSurrogate


SURROGATES: dict[str, Callable[[], type]] = {
    "gp": _gp,
    "dt": _dt,
    "bdt": _bdt,
    "boshnas": _boshnas,
    "protran-adaboost": _adaboost,
    "rf": _rf,
    "ensemble": _ensemble,
}


def available_surrogates() -> list[str]:
    return list(SURROGATES)


def surrogate_class(name: str) -> type:
    """The class behind a surrogate name; ``ValueError`` lists the known names."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}: known surrogates are {list(SURROGATES)}")
    return SURROGATES[name]()


def make_surrogate(name: str, random_state: int | None = None, *, default_space: Any = None,
                   **params: Any) -> EncodedSurrogate:
    """Build surrogate ``name`` with ``random_state`` and constructor ``params``.

    ``default_space`` (a design-space name or :class:`~protran_tune.space.DesignSpace`): the space whose
    embeddings the surrogate will be given, passed as ``space`` to surrogates that encode embeddings
    (those with a ``space`` parameter) unless ``params`` names one; others ignore it. Unknown
    parameters raise ``ValueError`` naming them and the allowed ones.
    """
    cls = surrogate_class(name)
    allowed = set(cls().get_params())
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for surrogate {name!r}; allowed: {sorted(allowed)}")
    if default_space is not None and "space" in allowed:
        params = {"space": default_space, **params}
    return cls(random_state=random_state, **params)


__all__ = [
    "Surrogate", "EncodedSurrogate", "check_xy", "SURROGATES", "available_surrogates",
    "surrogate_class", "make_surrogate",
]
