"""Parameters of the Wilson-Cowan node, in one typed object.

The values are those of the paper (Fig. 3 caption). Two points where the paper's text and the
authors' code disagree are explicit fields:

``reading``
    How the two constants f^(1), f^(2) of the firing function F(s) = offset + amplitude tanh(beta s)
    are used. ``"code"`` (default, reproduces the figures): offset f^(2), amplitude f^(1), so
    F_E = 0.65 + 0.25 tanh(3.7 s). ``"text"``: offset f^(1), amplitude f^(2), so
    F_E = 0.25 + 0.65 tanh(3.7 s), which puts one stable state outside [0, 1].
``coupling_scale``
    The factor Gamma in front of A x. ``"sqrt"`` (default, the authors' code): Gamma = 1/sqrt(N) with
    eigenvalues of A initialised around -sqrt(N). ``"linear"`` (the text): Gamma = 1/N with
    eigenvalues initialised around -N.

Every field may also hold a SymPy symbol (see :meth:`WCParams.symbolic`): the same equations then
build the symbolic model, so the torch code and the SymPy derivation share one source of truth.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Literal

Reading = Literal["code", "text"]
CouplingScale = Literal["sqrt", "linear"]

READINGS = ("code", "text")
COUPLING_SCALES = ("sqrt", "linear")

#: LaTeX names of the numeric fields, used for the symbolic model.
LATEX_NAMES = {
    "w_EE": "w_{EE}",
    "w_EI": "w_{EI}",
    "w_IE": "w_{IE}",
    "w_II": "w_{II}",
    "alpha_E": r"\alpha_E",
    "alpha_I": r"\alpha_I",
    "h_E": "h_E",
    "h_I": "h_I",
    "beta_E": r"\beta_E",
    "beta_I": r"\beta_I",
    "f_E1": "f_E^{(1)}",
    "f_E2": "f_E^{(2)}",
    "f_I1": "f_I^{(1)}",
    "f_I2": "f_I^{(2)}",
    "gamma": r"\gamma",
}

_POSITIVE = ("alpha_E", "alpha_I", "beta_E", "beta_I", "gamma")


@dataclass(frozen=True)
class WCParams:
    """Constants of one Wilson-Cowan node and the two paper-versus-code choices.

    ``gamma`` is the inhibitory time scale at the start of training (it is trainable in the
    network); the other constants stay fixed.
    """

    w_EE: Any = 7.2
    w_EI: Any = 2.0
    w_IE: Any = 0.0
    w_II: Any = 1.0
    alpha_E: Any = 1.5
    alpha_I: Any = 0.4
    h_E: Any = -1.2
    h_I: Any = 0.1
    beta_E: Any = 3.7
    beta_I: Any = 1.0
    f_E1: Any = 0.25
    f_E2: Any = 0.65
    f_I1: Any = 0.5
    f_I2: Any = 0.5
    gamma: Any = 0.25
    reading: Reading = "code"
    coupling_scale: CouplingScale = "sqrt"

    def __post_init__(self) -> None:
        if self.reading not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}, got {self.reading!r}")
        if self.coupling_scale not in COUPLING_SCALES:
            raise ValueError(
                f"coupling_scale must be one of {COUPLING_SCALES}, got {self.coupling_scale!r}"
            )
        for name in LATEX_NAMES:
            value = getattr(self, name)
            if not isinstance(value, numbers.Real):
                continue
            if not math.isfinite(value):
                raise ValueError(f"parameter {name} must be finite, got {value}")
            if name in _POSITIVE and value <= 0:
                raise ValueError(f"parameter {name} must be positive, got {value}")

    # -- firing functions -------------------------------------------------------------------
    @property
    def offset_E(self) -> Any:
        """Offset of F_E under the chosen reading."""
        return self.f_E2 if self.reading == "code" else self.f_E1

    @property
    def amplitude_E(self) -> Any:
        """Amplitude of F_E under the chosen reading."""
        return self.f_E1 if self.reading == "code" else self.f_E2

    @property
    def offset_I(self) -> Any:
        """Offset of F_I under the chosen reading."""
        return self.f_I2 if self.reading == "code" else self.f_I1

    @property
    def amplitude_I(self) -> Any:
        """Amplitude of F_I under the chosen reading."""
        return self.f_I1 if self.reading == "code" else self.f_I2

    # -- coupling scale ---------------------------------------------------------------------
    def coupling_factor(self, n_nodes: int) -> float:
        """Gamma, the factor in front of A x, for a network of ``n_nodes`` nodes."""
        _check_nodes(n_nodes)
        return 1.0 / math.sqrt(n_nodes) if self.coupling_scale == "sqrt" else 1.0 / n_nodes

    def eigenvalue_init_mean(self, n_nodes: int) -> float:
        """Mean of the initial trainable eigenvalues, so that Gamma * lambda starts near -1."""
        _check_nodes(n_nodes)
        return -math.sqrt(n_nodes) if self.coupling_scale == "sqrt" else -float(n_nodes)

    # -- variants and symbols ---------------------------------------------------------------
    def replace(self, **changes: Any) -> "WCParams":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def symbolic(self) -> "WCParams":
        """The same parameter object with every constant replaced by a SymPy symbol."""
        import sympy as sp

        return dataclasses.replace(
            self, **{name: sp.Symbol(latex, real=True) for name, latex in LATEX_NAMES.items()}
        )

    def values(self) -> dict[str, float]:
        """The numeric constants by field name."""
        return {name: float(getattr(self, name)) for name in LATEX_NAMES}

    def substitutions(self, symbolic: "WCParams") -> dict[Any, float]:
        """Map the symbols of ``symbolic`` to this object's numbers (for ``expr.subs``)."""
        return {getattr(symbolic, name): float(getattr(self, name)) for name in LATEX_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (for results records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_nodes(n_nodes: int) -> None:
    if not isinstance(n_nodes, numbers.Integral) or n_nodes < 1:
        raise ValueError(f"the number of nodes must be a positive integer, got {n_nodes!r}")
