"""Action spaces of the portfolio environment and their maps to proposed weights / budgets.

An agent emits a float32 action in ``[-1, 1]^action_dim``. ``ActionSpec`` turns a batch of
actions into what the risk gates receive:

- ``weights`` mode, long-only: ``logits = clip(a, -1, 1) * logit_scale`` over
  ``n_assets + 1`` entries (the last one is cash); the softmax of the logits gives a
  fully invested-or-cash book and the cash entry is dropped. Weights are in ``[0, 1]``
  and sum to at most 1.
- ``weights`` mode, long/short: ``w = clip(a, -1, 1) * max_symbol_weight`` over
  ``n_assets`` entries, then scaled down (never up) so that ``sum |w| <= max_gross``.
- ``budgets`` mode: ``softmax(clip(a, -1, 1) * logit_scale)`` over ``n_strategies + 1``
  entries (the last one is cash): one budget per strategy family, netted by
  ``allocgym.intents.IntentAggregator`` into symbol exposures.
- ``tilt`` mode: ``n_assets + 1`` entries tilt a prior allocator's book ``p`` (the last
  one is the gross head): ``u_i = p_i exp(tilt_scale a_i)``, target gross
  ``G = min(G_p exp(tilt_gross_scale a_g), max(G_p, max_gross))`` with ``G_p = sum |p|``,
  and ``w = u * G / sum |u|``. A zero action gives ``w = p`` bit for bit (every factor is
  exactly 1), so the agent starts from the prior and learns deviations from it.

The maps use only clip / multiply / max / exp / sum / divide / abs so that the ONNX export
can re-implement them op for op (``allocgym.agents`` holds the torch twin and its parity
test). This module imports numpy only: no torch, no gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from allocgym.config import AllocgymConfig
from allocgym.errors import ConfigError

ActionMode = Literal["weights", "budgets", "tilt"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis.

    Parameters
    ----------
    logits : ndarray, shape (..., k)

    Returns
    -------
    ndarray, shape (..., k)
        Non-negative, summing to 1 over the last axis.
    """
    # the ufuncs' reduce (what ``max`` / ``sum`` call) and in-place exp and divide on the
    # one fresh array: the same bits with fewer calls and allocations
    z = logits - np.maximum.reduce(logits, axis=-1, keepdims=True)
    if z.dtype.kind != "f":  # integer logits: exp's float64, as np.exp(z) gives
        z = z.astype(np.float64)
    np.exp(z, out=z)
    z /= np.add.reduce(z, axis=-1, keepdims=True)
    return z


@dataclass(frozen=True, eq=False)
class ActionSpec:
    """How a batch of agent actions becomes proposed weights (or strategy budgets).

    Parameters
    ----------
    mode : {"weights", "budgets", "tilt"}
        Action mode (``EnvConfig.action_mode``).
    n_assets : int
        Symbols in the universe.
    n_strategies : int
        Strategy families (``budgets`` mode; ignored in ``weights`` mode but recorded).
    long_only : bool
        Long-only softmax map (True) or bounded long/short map (False).
    logit_scale : float
        Multiplier turning an action in ``[-1, 1]`` into a softmax logit.
    max_symbol_weight : float
        Per-symbol bound of the long/short map (fraction of equity).
    max_gross : float
        Gross bound of the long/short map and of the tilt map's gross head.
    tilt_scale, tilt_gross_scale : float
        ``tilt`` mode: log-tilt per unit action of each weight and of the gross.

    Attributes
    ----------
    shape : tuple of int
        Per-env action shape ``(action_dim,)``.
    low, high : ndarray of float32, shape (action_dim,)
        Box bounds: -1 and 1.
    """

    mode: ActionMode
    n_assets: int
    n_strategies: int
    long_only: bool
    logit_scale: float
    max_symbol_weight: float
    max_gross: float
    tilt_scale: float = 1.0
    tilt_gross_scale: float = 0.5
    shape: tuple[int, ...] = field(init=False)
    low: np.ndarray = field(init=False, repr=False)
    high: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("weights", "budgets", "tilt"):
            raise ConfigError(
                f"ActionSpec.mode = {self.mode!r}: use 'weights', 'budgets' or 'tilt'"
            )
        if self.n_assets < 1:
            raise ConfigError(f"ActionSpec.n_assets = {self.n_assets}: need at least 1 symbol")
        if self.mode == "budgets" and self.n_strategies < 1:
            raise ConfigError(
                f"ActionSpec.n_strategies = {self.n_strategies} in budgets mode: need at least "
                "one strategy family (or set env.action_mode=weights)"
            )
        for name in ("logit_scale", "max_symbol_weight", "max_gross", "tilt_scale",
                     "tilt_gross_scale"):  # fmt: skip
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"ActionSpec.{name} = {value}: must be finite and > 0")
        if self.mode == "budgets":
            dim = self.n_strategies + 1
        elif self.mode == "tilt" or self.long_only:
            dim = self.n_assets + 1
        else:
            dim = self.n_assets
        object.__setattr__(self, "shape", (dim,))
        low = np.full(dim, -1.0, dtype=np.float32)
        high = np.full(dim, 1.0, dtype=np.float32)
        low.flags.writeable = False
        high.flags.writeable = False
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def from_config(cls, cfg: AllocgymConfig, n_assets: int, n_strategies: int = 0) -> ActionSpec:
        """Build from ``cfg.env`` (mode, logit scale) and ``cfg.risk`` (long-only, bounds).

        Parameters
        ----------
        cfg : AllocgymConfig
        n_assets : int
        n_strategies : int
            Number of strategy families emitting intents (``budgets`` mode).
        """
        return cls(
            mode=cfg.env.action_mode,
            n_assets=int(n_assets),
            n_strategies=int(n_strategies),
            long_only=bool(cfg.risk.long_only),
            logit_scale=float(cfg.env.logit_scale),
            max_symbol_weight=float(cfg.risk.max_symbol_weight),
            max_gross=float(cfg.risk.max_gross),
            tilt_scale=float(cfg.env.tilt_scale),
            tilt_gross_scale=float(cfg.env.tilt_gross_scale),
        )

    @property
    def action_dim(self) -> int:
        """Length of one env's action vector."""
        return self.shape[0]

    def _check(self, action: np.ndarray, expected: ActionMode) -> np.ndarray:
        if self.mode != expected:
            method = {"weights": "to_weights", "budgets": "to_budgets", "tilt": "to_tilted"}
            raise ConfigError(
                f"ActionSpec is in {self.mode!r} mode: call {method[self.mode]} instead"
            )
        a = np.asarray(action)
        if a.dtype.kind not in "fiu":  # text, booleans and complex are not cast
            raise ValueError(f"action has dtype {a.dtype}: pass numbers in [-1, 1]")
        a = a.astype(np.float64, copy=False)
        if a.ndim != 2 or a.shape[1] != self.action_dim:
            raise ValueError(
                f"action has shape {a.shape}, expected (n_envs, {self.action_dim}) for "
                f"{self.mode} mode with {self.n_assets} assets: reshape the batch"
            )
        # a fresh array the maps may scale in place; maximum and minimum propagate NaN as
        # np.clip does (without its Python-level wrapper)
        clipped = np.maximum(a, -1.0)
        return np.minimum(clipped, 1.0, out=clipped)

    def to_weights(self, action: np.ndarray) -> np.ndarray:
        """Proposed weights from ``weights``-mode actions.

        Parameters
        ----------
        action : array_like, shape (n_envs, action_dim)
            Values outside ``[-1, 1]`` are clipped; NaN passes through (the gates code it
            INVALID_INPUT).

        Returns
        -------
        ndarray, shape (n_envs, n_assets), float64
            Signed fractions of equity.
        """
        a = self._check(action, "weights")
        if self.long_only:
            a *= self.logit_scale
            return softmax(a)[:, : self.n_assets]
        a *= self.max_symbol_weight
        gross = np.add.reduce(np.abs(a), axis=1, keepdims=True)
        a *= self.max_gross / np.maximum(gross, self.max_gross)
        return a

    def to_budgets(self, action: np.ndarray) -> np.ndarray:
        """Strategy budgets from ``budgets``-mode actions.

        Parameters
        ----------
        action : array_like, shape (n_envs, n_strategies + 1)

        Returns
        -------
        ndarray, shape (n_envs, n_strategies + 1), float64
            Non-negative budgets summing to 1; the last column is cash.
        """
        a = self._check(action, "budgets")
        a *= self.logit_scale
        return softmax(a)

    def to_tilted(self, action: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """Proposed weights from ``tilt``-mode actions and the prior's books.

        Parameters
        ----------
        action : array_like, shape (n_envs, n_assets + 1)
            Per-symbol tilts, then the gross head; clipped to ``[-1, 1]``.
        prior : ndarray, shape (n_envs, n_assets)
            The prior allocator's proposal at the decision bar (signed fractions).

        Returns
        -------
        ndarray, shape (n_envs, n_assets), float64
            ``prior`` itself (same bits) where the action is zero; all zeros where the
            prior is all cash.
        """
        a = self._check(action, "tilt")
        p = np.asarray(prior, dtype=np.float64)
        if p.shape != (a.shape[0], self.n_assets):
            raise ValueError(
                f"prior has shape {p.shape}, expected ({a.shape[0]}, {self.n_assets}): one "
                "prior book per action row"
            )
        tilted = p * np.exp(a[:, : self.n_assets] * self.tilt_scale)
        prior_gross = np.abs(p).sum(axis=1)
        tilted_gross = np.abs(tilted).sum(axis=1)
        gross = prior_gross * np.exp(a[:, self.n_assets] * self.tilt_gross_scale)
        gross = np.minimum(gross, np.maximum(prior_gross, self.max_gross))
        ok = tilted_gross > 0.0
        scale = np.divide(gross, tilted_gross, out=np.zeros_like(gross), where=ok)
        return tilted * scale[:, None]

    def layout(self) -> dict[str, Any]:
        """The mapping's parameters as plain data (for the export manifest)."""
        return {
            "mode": self.mode,
            "action_dim": self.action_dim,
            "n_assets": self.n_assets,
            "n_strategies": self.n_strategies,
            "long_only": self.long_only,
            "logit_scale": self.logit_scale,
            "max_symbol_weight": self.max_symbol_weight,
            "max_gross": self.max_gross,
            "tilt_scale": self.tilt_scale,
            "tilt_gross_scale": self.tilt_gross_scale,
            "low": -1.0,
            "high": 1.0,
        }
