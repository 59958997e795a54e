"""Validation of a decision's inputs: ``read_inputs`` turns a ``GateContext`` and a
proposal into sanitised arrays (``Inputs``) the gates can compute on without checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from allocgym.compiled.trade import scan_inputs
from allocgym.errors import RequestError
from allocgym.ranges import RANGES
from allocgym.risk.context import GateContext, SectorMap, sector_map
from allocgym.risk.kernels import BIG, MAX_ABS_BETA, MAX_ABS_LOADING

if TYPE_CHECKING:
    from allocgym.risk.limits import RiskLimits


# Physical ranges (``allocgym.ranges``): a row whose equity, or a symbol whose price, ADV or
# spread, lies outside is unreadable / unusable like a NaN one, so no representable input
# reaches the float arithmetic of the gates (e.g. an equity of 1e300).
_EQUITY, _PRICE, _ADV, _SPREAD = (
    RANGES[name] for name in ("equity", "price", "adv_notional", "spread_bps")
)
# Equity, price, ADV, volatility, spread: their lowest and highest usable values (a
# volatility: any finite one), in ``scan_inputs``' order.
_FINITE_MAX = float(np.finfo(np.float64).max)
_LOW = np.array([_EQUITY.low, _PRICE.low, _ADV.low, 0.0, _SPREAD.low])
_HIGH = np.array([_EQUITY.high, _PRICE.high, _ADV.high, _FINITE_MAX, _SPREAD.high])
_any = np.logical_or.reduce  # ``ndarray.any`` without its Python wrapper


# The input kinds each target dtype takes: numbers as numbers (no bool, complex or text),
# flags as booleans or 0/1 integers (bool(nan) and bool("false") are True).
_KINDS = {np.dtype(np.float64): "fiu", np.dtype(bool): "b", np.dtype(np.int64): "iu"}


def as_batch(name: str, value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    want = np.dtype(dtype)
    if arr.dtype != want:
        kind = arr.dtype.kind
        flags01 = want.kind == "b" and kind in "iu" and np.isin(arr, (0, 1)).all()
        nulls = want.kind == "f" and _numbers_or_none(arr)
        if kind not in _KINDS[want] and not flags01 and not nulls:
            expected = "True/False" if want.kind == "b" else "numbers"
            raise RequestError(
                f"GateContext.{name} has dtype {arr.dtype}: pass {expected} (it is not cast)"
            )
        arr = arr.astype(want)
    if arr.shape == shape:
        return arr
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise RequestError(
            f"GateContext.{name} has shape {arr.shape}; expected {shape} "
            "(or an array broadcastable to it)"
        ) from None


def flag_batch(name: str, value: Any, default: bool, n: int) -> np.ndarray:
    """Per-portfolio flag ``value`` (optional) OR the global ``default``, shape (n,)."""
    if value is None:
        return np.ones(n, dtype=bool) if default else np.zeros(n, dtype=bool)
    flag = as_batch(name, value, (n,), bool)
    return np.ones(n, dtype=bool) if default else flag


@dataclass(eq=False, slots=True)  # not frozen: a frozen __init__ is slow
class Inputs:
    """Validated, sanitised views of one decision's inputs (``any_*``: whether any row or
    symbol is flagged, so that the common all-clean decision skips the masking)."""

    proposed: np.ndarray
    p: np.ndarray  # proposal, NaN -> 0, +-inf -> +-BIG, clipped to +-BIG
    c: np.ndarray  # current book (0 in bad rows), clipped to +-BIG
    equity: np.ndarray
    adv: np.ndarray
    vol: np.ndarray
    spread: np.ndarray
    betas: np.ndarray | None
    loadings: np.ndarray | None  # (n, N, k) factor loadings, 0 in bad rows; None: gate off
    sectors: SectorMap
    regime: np.ndarray
    slot: np.ndarray  # the regime's slot in the limit tables (``LimitTables.slot``)
    tradable: np.ndarray  # effective: flag AND finite, sane market data
    held: np.ndarray  # what execution cannot trade: flag off or no positive finite price
    bad_row: np.ndarray
    bad_proposal: np.ndarray
    killed: np.ndarray
    reduce: np.ndarray
    strategy: np.ndarray | None  # (n, n_strategies, N), clipped to +-BIG, 0 in bad rows
    strategy_gross: np.ndarray | None  # (n, n_strategies), from the raw values
    all_tradable: bool
    any_bad_row: bool
    any_bad_proposal: bool
    any_killed: bool
    any_reduce: bool

    def take(self, rows: np.ndarray) -> Inputs:
        """The inputs of the portfolios ``rows`` (indices); the ``any_*`` flags are kept
        (they only decide whether a mask is applied)."""
        n = self.p.shape[0]
        out = Inputs.__new__(Inputs)
        for name in Inputs.__slots__:
            v = getattr(self, name)
            if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == n:
                v = v[rows]
            setattr(out, name, v)
        return out


def _loadings(value: Any, n: int, m: int) -> np.ndarray:
    """The factor loadings of a decision as (n, m, k) (one (m, k) matrix broadcast)."""
    if value is None:
        raise RequestError(
            "max_factor_exposure is set but GateContext.factor_loadings is None: pass the "
            "loadings (n_envs, n_assets, n_factors) or set risk.max_factor_exposure to null"
        )
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim not in (2, 3) or arr.shape[-1] < 1 or arr.shape[-2] != m:
        raise RequestError(
            f"GateContext.factor_loadings has shape {arr.shape}; expected (n_envs, {m}, "
            f"n_factors) or ({m}, n_factors) with n_factors >= 1"
        )
    return as_batch("factor_loadings", arr, (n, m, arr.shape[-1]), np.float64)


def read_inputs(proposed: np.ndarray, ctx: GateContext, lim: RiskLimits) -> Inputs:
    """Validate and sanitise one decision's inputs (see ``GateContext`` for the rules)."""
    raw, book = _proposal_and_book(proposed, ctx)
    n, m = raw.shape
    sectors = sector_map(ctx.sector_ids, m)
    equity = as_batch("equity", ctx.equity, (n,), np.float64)
    prices = as_batch("prices", ctx.prices, (n, m), np.float64)
    adv = as_batch("adv_notional", ctx.adv_notional, (n, m), np.float64)
    vol = as_batch("volatility", ctx.volatility, (n, m), np.float64)
    spread = as_batch("spread_bps", ctx.spread_bps, (n, m), np.float64)
    tradable = as_batch("tradable", ctx.tradable, (n, m), bool)
    regime = _regime_codes(ctx.regime, n)
    killed = flag_batch("kill_switch", ctx.kill_switch, lim.kill_switch, n)
    reduce = flag_batch("reduce_only", ctx.reduce_only, lim.reduce_only, n)

    rows_ok, betas, loadings = _sane_factors(ctx, lim, n, m)
    scan = scan_inputs(
        raw, book, equity, prices, adv, vol, spread, tradable, rows_ok, _LOW, _HIGH, BIG
    )
    proposal, book, equity, bad_proposal, bad_row, usable = scan[:6]
    any_bad_proposal, any_bad_row, all_tradable = scan[6:]
    if betas is not None and any_bad_row:
        betas = np.where(bad_row[:, None], 0.0, betas)
    if loadings is not None and any_bad_row:
        loadings = np.where(bad_row[:, None, None], 0.0, loadings)
    strategy = strategy_gross = None
    if ctx.strategy_weights is not None:
        bad_proposal, strategy, strategy_gross = _strategy_weights(
            ctx.strategy_weights, bad_proposal, m
        )
        any_bad_proposal = bool(bad_proposal.any())
    held = ~usable
    if not all_tradable:
        # execution trades a flagged name at a valid price, sane ADV or not: a flattened
        # row sells it (only these are coded NOT_TRADABLE there)
        with np.errstate(invalid="ignore"):
            held = ~(tradable & np.isfinite(prices) & (prices > 0.0))
        if any_bad_row:  # an unreadable row's book is 0: coded on its market data
            held = np.where(bad_row[:, None], ~usable, held)
        adv = np.where(usable, adv, 1.0)
        vol = np.where(usable, vol, 0.0)
        spread = np.where(usable, spread, 0.0)
    return Inputs(
        proposed=raw,
        p=proposal,
        c=book,
        equity=equity,
        adv=adv,
        vol=vol,
        spread=spread,
        betas=betas,
        loadings=loadings,
        sectors=sectors,
        regime=regime,
        slot=lim.tables.slot(regime),
        tradable=usable,
        held=held,
        bad_row=bad_row,
        bad_proposal=bad_proposal,
        killed=killed,
        reduce=reduce,
        strategy=strategy,
        strategy_gross=strategy_gross,
        all_tradable=all_tradable,
        any_bad_row=any_bad_row,
        any_bad_proposal=any_bad_proposal,
        any_killed=bool(_any(killed)),
        any_reduce=bool(_any(reduce)),
    )


def _proposal_and_book(proposed: np.ndarray, ctx: GateContext) -> tuple[np.ndarray, np.ndarray]:
    """The proposal and the current book as float64 (n_envs, n_assets), shapes checked."""
    raw = _numbers(proposed, "proposed weights")
    if raw.ndim != 2:
        raise RequestError(
            f"proposed weights have shape {raw.shape}; expected (n_envs, n_assets) "
            "(use w[None, :] for one portfolio)"
        )
    if raw.shape[1] == 0:
        raise RequestError(
            f"proposed weights have shape {raw.shape}: a decision needs at least one symbol"
        )
    book = _numbers(ctx.current_weights, "GateContext.current_weights")
    if book.shape != raw.shape:
        raise RequestError(
            f"GateContext.current_weights has shape {book.shape}; expected {raw.shape} "
            "like the proposal"
        )
    return raw, book


def _numbers(value: Any, what: str) -> np.ndarray:
    """``value`` as float64; text, booleans and complex numbers refused, not cast."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" and not _numbers_or_none(arr):
        raise RequestError(f"{what} have dtype {arr.dtype}: pass numbers (they are not cast)")
    return arr if arr.dtype == np.float64 else arr.astype(np.float64)


def _numbers_or_none(arr: np.ndarray) -> bool:
    """An object array of numbers and None (a JSON null reads as NaN: a missing value)."""
    return arr.dtype.kind == "O" and all(
        v is None
        or (isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool))
        for v in arr.flat
    )


def _regime_codes(value: Any, n: int) -> np.ndarray:
    """The regime codes as int64 (n,); floats or labels are refused, not cast."""
    regime = np.asarray(value)
    if regime.dtype.kind not in "iu":
        raise RequestError(
            f"GateContext.regime has dtype {regime.dtype}; pass integer codes "
            "(allocgym.regime.regime_code)"
        )
    return as_batch("regime", regime, (n,), np.int64)


def _sane_factors(
    ctx: GateContext, lim: RiskLimits, n: int, m: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The rows (n,) whose betas and factor loadings are sane where their gates are on,
    with the betas (n, N) and loadings (n, N, k) those gates read (None when off)."""
    rows_ok = np.ones(n, dtype=bool)
    betas = None
    if lim.beta_tolerance is not None:
        if ctx.betas is None:
            raise RequestError(
                "beta_tolerance is set but GateContext.betas is None: pass betas "
                "(n_envs, n_assets) or set risk.beta_tolerance to null"
            )
        betas = as_batch("betas", ctx.betas, (n, m), np.float64)
        sane = np.abs(betas) <= MAX_ABS_BETA  # False for NaN and +-inf too
        if not sane.all():
            rows_ok &= sane.all(axis=1)
    loadings = None
    if lim.max_factor_exposure is not None:
        loadings = _loadings(ctx.factor_loadings, n, m)
        sane = np.abs(loadings) <= MAX_ABS_LOADING  # False for NaN and +-inf too
        if not sane.all():
            rows_ok &= sane.all(axis=(1, 2))
    return rows_ok, betas, loadings


def _strategy_weights(
    value: Any, bad_proposal: np.ndarray, n_assets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-strategy contributions ``value`` (n, n_strategies, N) checked: the bad-proposal
    rows (n,) with those whose contributions are not finite added, the contributions
    (0 in those rows) clipped to +-BIG, and their gross (n, n_strategies)."""
    n = bad_proposal.shape[0]
    weights = np.asarray(value, dtype=np.float64)
    if weights.ndim != 3 or weights.shape[0] != n or weights.shape[2] != n_assets:
        raise RequestError(
            f"GateContext.strategy_weights has shape {weights.shape}; expected "
            f"({n}, n_strategies, {n_assets})"
        )
    bad_proposal = bad_proposal | ~np.isfinite(weights).all(axis=(1, 2))
    weights = np.where(bad_proposal[:, None, None], 0.0, weights)
    # From the raw values (overflow -> inf -> scale 0), so that the scaled
    # contributions of even absurd finite inputs stay under the cap.
    strategy_gross = np.abs(weights).sum(axis=2)
    return bad_proposal, weights.clip(-BIG, BIG), strategy_gross
