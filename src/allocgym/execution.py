"""Execution policy: no-trade bands, triggers, lot rounding.

``ExecutionPolicy.apply`` turns the gates' approved weights into the book actually held
after lot-rounded orders, batched over ``(n_envs, n_assets)`` with no Python loop over
either axis.

Triggers (per portfolio, ``TriggerFlag`` bits in ``ExecutionResult.trigger_flags``)
-----------------------------------------------------------------------------------
- portfolio drift ``sum_i |w_tar,i - w_cur,i| > tau_L1``: rebalance every name;
- per-name drift ``|w_tar,i - w_cur,i| > tau_i``: trade that name;
- scheduled window (``Triggers.scheduled``; every bar is a window unless given);
- risk overrides: volatility spike (``vol_ratio >= vol_spike_ratio``), spread blowout
  (``spread_ratio >= spread_blowout_ratio``) and the kill switch: rebalance every name
  now, in or out of a scheduled window.

With ``scheduled_only`` a portfolio trades only in a scheduled window or on a risk
override. A name whose trade is suppressed carries ``ReasonCode.NO_TRADE_BAND``; a name
whose held weight differs from the approved one after lot rounding carries
``ReasonCode.LOT_ROUNDING``.

Safety (the book never leaves the hard limits)
----------------------------------------------
A portfolio is *forced* when the gates coded ``FORCED_DERISK`` or ``KILL_SWITCH`` anywhere
in it, or when its current book is outside the hard limits of ``limits``. Its *forced
names* are those coded ``FORCED_DERISK`` / ``KILL_SWITCH`` (every name when killed, or when
no name is coded; plus, with ``limits``, names over their symbol cap). Then:

- forced names: no band suppresses them, and lot rounding moves each position toward
  zero (``|w_final,i| <= |w_approved,i|``, same sign; a position can always be closed out
  exactly even when it is not a whole number of lots). The other names of a forced
  portfolio keep their bands (one name drifting over its cap does not trade the book);
- other names: rounding moves each order toward the current position (an order
  never exceeds the approved one, so turnover, participation and slippage only shrink),
  and the final book must stay inside the hard limits (with ``limits``; without them,
  inside the exposures the gates' inputs already satisfy: at most the larger of the
  approved and the current book's gross, sector gross, ``|net|`` and ``|beta^T w|``).
  Each name stays between its current and approved weight. Rounding can still lift gross
  (a rotation sells a fraction of a lot less and buys a fraction less): exposure-
  increasing orders are then scaled down (per portfolio and sector) and rounded again
  (``TriggerFlag.ROUNDING_SCALED``); a book that still fails (net or beta moved) takes the
  largest passing uniform shrink of the whole trade from a fixed grid;
- a band is lifted for a whole portfolio when the partly suppressed book fails those
  checks (``TriggerFlag.BAND_LIFTED``): suppression never takes a book outside;
- as a last resort the portfolio takes the approved (banded) book unrounded
  (``TriggerFlag.FALLBACK``; e.g. current and approved books on the same binding beta
  limit). Holding instead could freeze such a portfolio for good.

A name that is not tradable (or has no valid price) is never traded.
Quantities are shares: ``q = w * equity / price``. ``target_weights`` are recomputed from
the final quantities (exactly the current weight where nothing traded, exactly 0 on a
close-out).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import TYPE_CHECKING, Any

import numpy as np

from allocgym import compiled
from allocgym.config import ExecutionConfig
from allocgym.errors import ConfigError, InvariantBreach
from allocgym.risk import GateContext, GateResult, ReasonCode
from allocgym.risk.context import Bounds, SectorMap, sector_map
from allocgym.risk.gates.registry import (
    hard_ok,
    names_outside,
    portfolio_bounds,
)
from allocgym.risk.kernels import or_bits, rows_all, rows_any

if TYPE_CHECKING:
    from allocgym.risk import RiskLimits

_TOL = 1e-12
"""Absolute slack (weight units) of the post-rounding exposure checks (float dust only)."""
_SHRINK_GRID = (0.99, 0.95, 0.9, 0.75, 0.5, 0.25)
"""Uniform trade shrinks tried, largest first, when a rounded book fails a check."""

_FORCED_MASK = int(ReasonCode.FORCED_DERISK | ReasonCode.KILL_SWITCH)
_KILL = int(ReasonCode.KILL_SWITCH)
_BAND = int(ReasonCode.NO_TRADE_BAND)
_LOT = int(ReasonCode.LOT_ROUNDING)


class TriggerFlag(IntFlag):
    """Why a portfolio traded (or how execution adjusted it); bits of ``trigger_flags``."""

    NONE = 0
    NAME_DRIFT = 1 << 0
    """Some name drifted beyond its band tau_i."""
    PORTFOLIO_DRIFT = 1 << 1
    """L1 drift beyond tau_L1: every name rebalanced."""
    SCHEDULED = 1 << 2
    """The bar is a scheduled trading window."""
    VOL_SPIKE = 1 << 3
    """Risk override: short/long volatility ratio at or above ``vol_spike_ratio``."""
    SPREAD_BLOWOUT = 1 << 4
    """Risk override: spread over its trailing median at or above ``spread_blowout_ratio``."""
    KILL_SWITCH = 1 << 5
    """Risk override: kill switch (config, context or gate code)."""
    FORCED = 1 << 6
    """Forced de-risking: gate codes or a current book outside the hard limits."""
    BAND_LIFTED = 1 << 7
    """Band suppression undone: the partly suppressed book failed the exposure checks."""
    ROUNDING_SCALED = 1 << 8
    """Exposure-increasing orders scaled down so the lot-rounded book stays inside."""
    FALLBACK = 1 << 9
    """No lot-rounded book passed the checks: the approved book was taken unrounded."""


@dataclass(frozen=True)
class ExecutionParams:
    """Typed execution parameters (see ``ExecutionConfig`` for each field).

    ``name_drift_threshold`` and ``lot_size`` may be scalars or arrays of shape
    ``(n_assets,)`` (per-name bands and lots).
    """

    name_drift_threshold: float | np.ndarray = 0.005
    portfolio_drift_threshold: float = 0.01
    lot_size: float | np.ndarray = 1.0
    vol_spike_ratio: float = 2.0
    spread_blowout_ratio: float = 3.0
    scheduled_only: bool = False
    schedule_every: int = 1
    vol_short_window: int = 5
    vol_long_window: int = 63
    spread_window: int = 21

    def __post_init__(self) -> None:
        tau = np.asarray(self.name_drift_threshold, dtype=np.float64)
        lot = np.asarray(self.lot_size, dtype=np.float64)
        if not (np.isfinite(tau).all() and (tau >= 0).all()):
            raise ConfigError(
                f"ExecutionParams.name_drift_threshold = {self.name_drift_threshold!r}: must be "
                "finite and >= 0; set execution.name_drift_threshold"
            )
        if not (np.isfinite(lot).all() and (lot > 0).all()):
            raise ConfigError(
                f"ExecutionParams.lot_size = {self.lot_size!r}: must be finite and > 0; set "
                "execution.lot_size"
            )
        scalars = {
            "portfolio_drift_threshold": (self.portfolio_drift_threshold, 0.0),
            "vol_spike_ratio": (self.vol_spike_ratio, 1e-300),
            "spread_blowout_ratio": (self.spread_blowout_ratio, 1e-300),
        }
        for name, (value, low) in scalars.items():
            if not (np.isfinite(value) and value >= low):
                raise ConfigError(
                    f"ExecutionParams.{name} = {value!r}: must be finite and "
                    f"{'>= 0' if low == 0 else '> 0'}; set execution.{name}"
                )
        for name in ("schedule_every", "vol_short_window", "vol_long_window", "spread_window"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"ExecutionParams.{name} = {getattr(self, name)}: must be >= 1")
        if self.vol_short_window >= self.vol_long_window or self.vol_short_window < 2:
            raise ConfigError(
                f"execution.vol_short_window = {self.vol_short_window} must be >= 2 and below "
                f"vol_long_window = {self.vol_long_window}"
            )

    @classmethod
    def from_config(cls, cfg: ExecutionConfig) -> ExecutionParams:
        """Build params from the ``execution`` config section."""
        return cls(
            name_drift_threshold=float(cfg.name_drift_threshold),
            portfolio_drift_threshold=float(cfg.portfolio_drift_threshold),
            lot_size=float(cfg.lot_size),
            vol_spike_ratio=float(cfg.vol_spike_ratio),
            spread_blowout_ratio=float(cfg.spread_blowout_ratio),
            scheduled_only=bool(cfg.scheduled_only),
            schedule_every=int(cfg.schedule_every),
            vol_short_window=int(cfg.vol_short_window),
            vol_long_window=int(cfg.vol_long_window),
            spread_window=int(cfg.spread_window),
        )


@dataclass(frozen=True, eq=False)
class Triggers:
    """Trigger inputs of one decision; ``None`` fields never fire.

    Attributes
    ----------
    scheduled : ndarray of bool, shape (n_envs,), optional
        The bar is a scheduled window; ``None`` = every bar is one (daily data).
    vol_ratio : ndarray, shape (n_envs,) or (n_envs, n_assets), optional
        Short-window over long-window realized volatility; any entry at or above
        ``vol_spike_ratio`` fires the vol-spike override.
    spread_ratio : ndarray, shape (n_envs,) or (n_envs, n_assets), optional
        Current spread over its trailing median; any entry at or above
        ``spread_blowout_ratio`` fires the spread-blowout override.
    kill_switch : ndarray of bool, shape (n_envs,), optional
        Operator kill switch (OR-ed with the context's, the limits' and the gate codes).
    """

    scheduled: np.ndarray | None = None
    vol_ratio: np.ndarray | None = None
    spread_ratio: np.ndarray | None = None
    kill_switch: np.ndarray | None = None


def trigger_inputs(
    returns: np.ndarray,
    spread_bps: np.ndarray,
    params: ExecutionParams,
    t: int | np.ndarray | None = None,
) -> Triggers:
    """Trigger inputs from trailing windows (data up to and including the decision bar).

    Parameters
    ----------
    returns : ndarray, shape (n_envs, L, n_assets)
        Simple returns, ``L >= vol_long_window``; the vol ratio is that of the
        equal-weighted mean return (a market-wide spike, not one name's).
    spread_bps : ndarray, shape (n_envs, L2, n_assets)
        Quoted spreads, ``L2 >= spread_window``; the ratio is the cross-sectional median of
        each name's last spread over its trailing ``spread_window`` median.
    params : ExecutionParams
    t : int or ndarray of int, shape (n_envs,), optional
        Bar index; the bar is scheduled when ``t % schedule_every == 0``.

    Returns
    -------
    Triggers
        ``vol_ratio`` and ``spread_ratio`` of shape (n_envs,) (1.0 where undefined).
    """
    r = np.asarray(returns, dtype=np.float64)
    s = np.asarray(spread_bps, dtype=np.float64)
    if r.ndim != 3 or r.shape[1] < params.vol_long_window:
        raise ConfigError(
            f"trigger_inputs: returns {r.shape} must be (n_envs, L, n_assets) with L >= "
            f"vol_long_window = {params.vol_long_window}"
        )
    if s.ndim != 3 or s.shape[1] < params.spread_window:
        raise ConfigError(
            f"trigger_inputs: spread_bps {s.shape} must be (n_envs, L, n_assets) with L >= "
            f"spread_window = {params.spread_window}"
        )
    market = r.mean(axis=2)
    short = market[:, -params.vol_short_window :].std(axis=1, ddof=1)
    long_ = market[:, -params.vol_long_window :].std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        vol_ratio = np.where(long_ > 0, short / long_, 1.0)
        med = np.median(s[:, -params.spread_window :], axis=1)
        per_name = np.where(med > 0, s[:, -1] / med, 1.0)
    spread_ratio = np.median(per_name, axis=1)
    scheduled = None
    if t is not None:
        tt = np.broadcast_to(np.asarray(t, dtype=np.int64), (r.shape[0],))
        scheduled = (tt % params.schedule_every) == 0
    return Triggers(scheduled=scheduled, vol_ratio=vol_ratio, spread_ratio=spread_ratio)


@dataclass(frozen=True, eq=False)
class ExecutionResult:
    """Output of ``ExecutionPolicy.apply``.

    Attributes
    ----------
    target_weights : ndarray, shape (n_envs, n_assets)
        Book held after the lot-rounded orders (weights recomputed from quantities).
    delta_qty : ndarray, shape (n_envs, n_assets)
        Signed order quantity in shares: exact whole lots when the held position is a
        whole number of lots (it is read back from the weights and snapped when within
        float dust), so a close-out is exactly minus the held quantity; not whole only for
        a fractional held position's close-out and the unrounded forced fallback.
    target_qty : ndarray, shape (n_envs, n_assets)
        Position in shares after the orders.
    side : ndarray of int8, shape (n_envs, n_assets)
        +1 buy, -1 sell, 0 no order.
    reasons : ndarray of int64, shape (n_envs, n_assets)
        Gate symbol reasons OR ``NO_TRADE_BAND`` where a band or trigger suppressed a trade
        OR ``LOT_ROUNDING`` where the held weight differs from the approved one because
        the order was lot-rounded (or scaled to keep the rounded book inside).
    portfolio_reasons : ndarray of int64, shape (n_envs,)
        Gate portfolio reasons OR ``NO_TRADE_BAND`` when any name was suppressed OR
        ``LOT_ROUNDING`` when any name was rounded off its approved weight.
    traded : ndarray of bool, shape (n_envs,)
        Some order is non-zero.
    trigger_flags : ndarray of int64, shape (n_envs,)
        ``TriggerFlag`` bits.
    suppressed : ndarray of bool, shape (n_envs, n_assets)
        A non-zero approved trade was not sent because of a band or a missing trigger.
    """

    target_weights: np.ndarray
    delta_qty: np.ndarray
    target_qty: np.ndarray
    side: np.ndarray
    reasons: np.ndarray
    portfolio_reasons: np.ndarray
    traded: np.ndarray
    trigger_flags: np.ndarray
    suppressed: np.ndarray


@dataclass(eq=False, slots=True)  # not frozen: a frozen __init__ is slow
class _Refs:
    """Reference exposures a candidate book must not exceed, per portfolio (``*_tol``:
    the same plus the float-dust slack ``_TOL``, as the checks compare them)."""

    lo: np.ndarray  # (n_envs, n_assets), lowest weight minus _TOL
    hi: np.ndarray  # highest weight plus _TOL
    gross: np.ndarray  # (n_envs,)
    sector: np.ndarray  # (n_envs, n_sectors)
    net: np.ndarray
    gross_tol: np.ndarray
    sector_tol: np.ndarray
    net_tol: np.ndarray
    beta_tol: np.ndarray | None
    loadings: np.ndarray | None = None  # (n_envs, n_assets, n_factors) with a factor cap
    factor_tol: np.ndarray | None = None  # (n_envs, n_factors)


class ExecutionPolicy:
    """No-trade bands, triggers and lot rounding over a batch of portfolios.

    Parameters
    ----------
    params : ExecutionParams
    limits : RiskLimits, optional
        Hard limits (``allocgym.risk``) used to detect a current book outside them (a
        forced portfolio) and the configured kill switch. Without them only the gates'
        ``FORCED_DERISK`` / ``KILL_SWITCH`` codes mark a portfolio forced.
    """

    def __init__(self, params: ExecutionParams, limits: RiskLimits | None = None) -> None:
        self.params = params
        self.limits = limits
        self._static: tuple[Any, Any, _Static] | None = None

    # ------------------------------------------------------------------ public
    def apply(
        self, gate: GateResult, ctx: GateContext, triggers: Triggers | None = None
    ) -> ExecutionResult:
        """Map approved weights to lot-rounded orders and the book held after them.

        Parameters
        ----------
        gate : GateResult
            Output of ``RiskGateChain.apply`` (approved weights and reason codes).
        ctx : GateContext
            The same context the gates saw (current weights, equity, prices, sectors...).
        triggers : Triggers, optional
            Schedule and risk-override inputs; ``None`` = every bar scheduled, no override.

        Returns
        -------
        ExecutionResult
        """
        # Division by a zero price or share count happens where the result is masked.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._apply(gate, ctx, triggers)

    def _apply(
        self, gate: GateResult, ctx: GateContext, triggers: Triggers | None
    ) -> ExecutionResult:
        st = self._tables()
        book = _read_book(gate, ctx)
        fired = self._fire(book, ctx, triggers or Triggers(), st)
        plan = self._plan(book, ctx, fired)
        held = _round_plan(book, plan, st)
        return _result(book, fired, plan, held)

    def _fire(self, book: _Book, ctx: GateContext, trig: Triggers, st: _Static) -> _Fired:
        """Which names drifted past their band, and which triggers fired, per portfolio."""
        p = self.params
        a, c, n_envs = book.a, book.c, book.a.shape[0]
        moving, name_drift, l1, row_bits = compiled.drift_masks(
            a, c, book.price_ok, book.every_ok, st.bands(a.shape[1]),
            p.portfolio_drift_threshold, book.sym, book.port,
        )  # fmt: skip
        kill = (row_bits & _KILL) != 0
        for flag in (ctx.kill_switch, trig.kill_switch):
            if flag is not None:
                kill = kill | _fit(np.asarray(flag, dtype=bool), (n_envs,))
        if st.kill:
            kill = np.ones(n_envs, dtype=bool)
        return _Fired(
            moving=moving,
            name_drift=name_drift,
            l1=l1,
            kill=kill,
            vol_spike=_any_at_least(trig.vol_ratio, p.vol_spike_ratio, n_envs),
            spread_blow=_any_at_least(trig.spread_ratio, p.spread_blowout_ratio, n_envs),
            scheduled=(
                np.ones(n_envs, dtype=bool)
                if trig.scheduled is None
                else _fit(np.asarray(trig.scheduled, dtype=bool), (n_envs,))
            ),
            coded_forced=(row_bits & _FORCED_MASK) != 0,
        )

    def _plan(self, book: _Book, ctx: GateContext, fired: _Fired) -> _Plan:
        """Forced names, band suppression and the exposure references: the banded target
        that lot rounding then works on."""
        a, c, n_envs = book.a, book.c, book.a.shape[0]
        betas = book.betas
        bounds = self._bounds(ctx, n_envs, book.sectors, betas)
        beta_cap = np.inf if bounds is None or bounds.betas is None else bounds.beta_tol
        # With no beta limit the beta checks can only fail on NaN sums; _beta_inert proves
        # none can arise, and then they are skipped (same outcome, fewer passes).
        if betas is not None and bounds is not None and _beta_inert(beta_cap, betas, a, c):
            betas = None
        if bounds is None:
            outside = np.zeros(n_envs, dtype=bool)
        else:
            outside = ~hard_ok(c, bounds)
        kill = fired.kill
        forced = fired.coded_forced | kill | outside
        fz = _forced_names(book.sym, c, forced, fired.coded_forced, kill, outside, bounds)
        override = fired.vol_spike | fired.spread_blow | kill
        full = fired.l1 | override
        # suppress = moving & ~(fz | full | (allowed & name_drift)), row terms last. Only
        # the forced names skip their bands: one name drifting over a cap must not make
        # the whole book trade (the band check below still lifts a band that would leave
        # a portfolio limit broken).
        allowed = fired.scheduled | override if self.params.scheduled_only else None
        if allowed is not None:
            full &= allowed
        if full.all():  # every portfolio rebalances every name
            suppress = np.zeros(a.shape, dtype=bool)
        else:
            if allowed is None or allowed.all():
                suppress = fired.moving & ~fired.name_drift
            else:
                suppress = fired.moving & ~(allowed[:, None] & fired.name_drift)
            if full.any():
                suppress &= ~full[:, None]
            if fz is not None:
                suppress &= ~fz

        refs = _refs(a, c, forced, book.sectors, betas, bounds, beta_cap, fz)
        any_suppress = bool(suppress.any())
        if any_suppress:
            target = np.where(suppress, c, a)
            band_ok = _passes(target, refs, book.sectors, betas)
            suppressed_rows = rows_any(suppress)
            lifted = suppressed_rows & ~band_ok
            if lifted.any():
                suppress &= band_ok[:, None]
                suppressed_rows &= band_ok
                target = np.where(suppress, c, a)
        else:
            lifted = suppressed_rows = np.zeros(n_envs, dtype=bool)
            target = a
        return _Plan(
            betas, forced, fz, refs, suppress, any_suppress, suppressed_rows, lifted, target
        )

    # ------------------------------------------------------------------ internals
    def _tables(self) -> _Static:
        """Constants of ``params`` and ``limits`` (rebuilt if either is reassigned)."""
        cached = self._static
        if cached is None or cached[0] is not self.params or cached[1] is not self.limits:
            cached = (self.params, self.limits, _Static.build(self.params, self.limits))
            self._static = cached
        return cached[2]

    def _bounds(
        self, ctx: GateContext, n_envs: int, sectors: SectorMap, betas: np.ndarray | None
    ) -> Bounds | None:
        """The hard limits of ``self.limits`` per portfolio, as the gates apply them (the
        registry's bounds; ``None`` without limits)."""
        limits = self.limits
        if limits is None:
            return None
        regime = _fit(np.asarray(ctx.regime, dtype=np.int64), (n_envs,))
        equity = _fit(np.asarray(ctx.equity, dtype=np.float64), (n_envs,))
        slot = limits.tables.slot(regime)
        loadings = None
        if limits.max_factor_exposure is not None and ctx.factor_loadings is not None:
            raw = np.asarray(ctx.factor_loadings, dtype=np.float64)
            # one (n_assets, n_factors) matrix is shared; a non-finite loading adds nothing
            loadings = np.nan_to_num(np.broadcast_to(raw, (n_envs, *raw.shape[-2:])))
        return portfolio_bounds(limits, slot, equity, sectors, betas, loadings)


_FLAG_BITS = np.array(
    [
        TriggerFlag.NAME_DRIFT,
        TriggerFlag.PORTFOLIO_DRIFT,
        TriggerFlag.SCHEDULED,
        TriggerFlag.VOL_SPIKE,
        TriggerFlag.SPREAD_BLOWOUT,
        TriggerFlag.KILL_SWITCH,
        TriggerFlag.FORCED,
        TriggerFlag.BAND_LIFTED,
        TriggerFlag.ROUNDING_SCALED,
        TriggerFlag.FALLBACK,
    ],
    dtype=np.int64,
)


def _fit(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``np.broadcast_to(arr, shape)``, skipping its overhead when the shape already fits."""
    return arr if arr.shape == shape else np.broadcast_to(arr, shape)


@dataclass(frozen=True, eq=False)
class _Static:
    """Constants of one ``(ExecutionParams, RiskLimits)`` pair."""

    tau: np.ndarray
    lot: np.ndarray
    unit_lot: bool  # every lot is 1: dividing and multiplying by it is exact, skipped
    kill: bool
    rows: dict[int, tuple[np.ndarray, np.ndarray]]  # (tau, lot) as (n_assets,), per n_assets

    @classmethod
    def build(cls, params: ExecutionParams, limits: RiskLimits | None) -> _Static:
        lot = np.asarray(params.lot_size, dtype=np.float64)
        return cls(
            tau=np.asarray(params.name_drift_threshold, dtype=np.float64),
            lot=lot,
            unit_lot=bool(np.all(lot == 1.0)),
            kill=limits is not None and limits.kill_switch,
            rows={},
        )

    def bands(self, n_assets: int) -> np.ndarray:
        """The name drift thresholds tau_i, shape (n_assets,)."""
        return self._rows(n_assets)[0]

    def lots(self, n_assets: int) -> np.ndarray:
        """The lot sizes, shape (n_assets,)."""
        return self._rows(n_assets)[1]

    def _rows(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.rows.get(n_assets)
        if row is None:
            row = self.rows[n_assets] = (_fit(self.tau, (n_assets,)), _fit(self.lot, (n_assets,)))
        return row


def _beta_inert(beta_cap: float, betas: np.ndarray, a: np.ndarray, c: np.ndarray) -> bool:
    """True when every beta check against ``beta_cap`` passes whatever the book.

    Without a beta limit (cap ``inf``) a beta check fails only on a NaN sum, i.e. when
    ``beta * w`` terms overflow to infinities of both signs. Books this policy looks at
    stay within a few times ``max(|approved|, |current|)`` per name, so a product bound
    far below the float range proves no sum can overflow.
    """
    if beta_cap != np.inf:
        return False
    n_assets = max(1, a.shape[1])
    b_max = float(np.abs(betas).max(initial=0.0))
    w_max = max(float(np.abs(a).max(initial=0.0)), float(np.abs(c).max(initial=0.0)))
    return b_max * w_max * 4.0 * n_assets < 1e300


def _refs(
    a: np.ndarray,
    c: np.ndarray,
    forced: np.ndarray,
    sectors: SectorMap,
    betas: np.ndarray | None,
    bounds: Bounds | None,
    beta_cap: float,
    forced_names: np.ndarray | None = None,
) -> _Refs:
    """Exposure ceilings a final book must respect, per portfolio.

    Each name stays between its current and approved weight (a forced name, see
    ``_forced_names``: between 0 and the approved weight). Portfolio exposures stay at or below the hard limit when limits are
    known, or below what the gates' inputs already satisfy otherwise: the approved book's
    in a forced portfolio, the larger of the approved and the current book's elsewhere
    (both inside the limits). The approved book's own exposure is always allowed (float
    dust of the gates).
    """
    limits = None
    if bounds is not None:
        limits = (bounds.gross_limit(), bounds.sector_cap, bounds.net_cap, beta_cap)
    lo, hi, gross, sector, net, gross_tol, sector_tol, net_tol, beta_tol = compiled.exposure_refs(
        a, c, forced, forced_names, betas, sectors.ids, sectors.n, limits, _TOL
    )
    loadings = factor_tol = None
    if bounds is not None and bounds.loadings is not None:
        # Lot rounding must not lift a factor exposure over the cap (or over the approved
        # book's own exposure, float dust of the gates).
        loadings = bounds.loadings
        factor = np.maximum(np.abs(np.einsum("nmk,nm->nk", loadings, a)), bounds.factor_cap)
        factor_tol = factor + _TOL
    return _Refs(
        lo=lo,
        hi=hi,
        gross=gross,
        sector=sector,
        net=net,
        gross_tol=gross_tol,
        sector_tol=sector_tol,
        net_tol=net_tol,
        beta_tol=beta_tol,
        loadings=loadings,
        factor_tol=factor_tol,
    )


def _forced_names(
    sym: np.ndarray,
    c: np.ndarray,
    forced: np.ndarray,
    coded_forced: np.ndarray,
    kill: np.ndarray,
    outside: np.ndarray,
    bounds: Bounds | None,
) -> np.ndarray | None:
    """(n_envs, n_assets) bool: names that must trade now, past any band (``None``: none).

    The names the gates coded ``FORCED_DERISK`` or ``KILL_SWITCH``; every name of a killed
    portfolio; in a portfolio outside the hard limits, the names over their symbol cap
    (or short under long-only) as well. A forced portfolio with no such name (codes only
    at portfolio level, or a book outside a portfolio limit that no gate coded) forces all
    of its names, as it cannot tell which ones bring it back inside.
    """
    if not forced.any():
        return None
    fz = (sym & _FORCED_MASK) != 0 if coded_forced.any() else np.zeros(c.shape, dtype=bool)
    if bounds is not None and outside.any():
        fz |= names_outside(c, bounds) & outside[:, None]
    whole = kill | (forced & ~rows_any(fz))
    if whole.any():
        fz |= whole[:, None]
    return fz


@dataclass(eq=False, slots=True)  # not frozen: a frozen __init__ is slow
class _Book:
    """One decision's books and market inputs as execution reads them."""

    a: np.ndarray  # approved weights (n_envs, n_assets)
    c: np.ndarray  # current weights
    sym: np.ndarray  # gate symbol reasons
    port: np.ndarray  # gate portfolio reasons
    price_ok: np.ndarray  # tradable with a valid price (and equity)
    every_ok: bool  # price_ok everywhere: the common case skips the masking
    shares_per_w: np.ndarray  # shares per unit weight, 0 where no valid price
    sectors: SectorMap
    betas: np.ndarray | None  # a missing beta (NaN) is 0


def _read_book(gate: GateResult, ctx: GateContext) -> _Book:
    """The approved and current books with the market inputs execution needs.

    Raises
    ------
    InvariantBreach
        Approved and current books of different shapes, or a non-finite weight (the
        gates code and replace those).
    """
    a = np.asarray(gate.approved, dtype=np.float64)
    c = np.asarray(ctx.current_weights, dtype=np.float64)
    if c.shape != a.shape:
        raise InvariantBreach(
            f"ExecutionPolicy.apply: approved {a.shape} and current {c.shape} differ"
        )
    if not (np.isfinite(a).all() and np.isfinite(c).all()):
        raise InvariantBreach(
            "ExecutionPolicy.apply: non-finite approved or current weights; the gates "
            "must have coded and replaced them (INVALID_INPUT)"
        )
    n_envs, n_assets = a.shape
    equity = np.asarray(ctx.equity, dtype=np.float64).reshape(n_envs, 1)
    prices = _fit(np.asarray(ctx.prices, dtype=np.float64), a.shape)
    tradable = _fit(np.asarray(ctx.tradable, dtype=bool), a.shape)
    price_ok = tradable & np.isfinite(prices) & (prices > 0) & (equity > 0)
    every_ok = bool(price_ok.all())
    shares_per_w = equity / prices  # shares per unit weight (inf/NaN masked below)
    if not every_ok:
        shares_per_w = np.where(price_ok, shares_per_w, 0.0)
    betas = None
    if ctx.betas is not None:  # a missing beta (NaN) contributes nothing
        raw_betas = _fit(np.asarray(ctx.betas, np.float64), a.shape)
        betas = raw_betas if np.isfinite(raw_betas).all() else np.nan_to_num(raw_betas)
    return _Book(
        a=a,
        c=c,
        sym=np.asarray(gate.symbol_reasons, dtype=np.int64),
        port=np.asarray(gate.portfolio_reasons, dtype=np.int64),
        price_ok=price_ok,
        every_ok=every_ok,
        shares_per_w=shares_per_w,
        sectors=sector_map(ctx.sector_ids, n_assets),
        betas=betas,
    )


@dataclass(eq=False, slots=True)
class _Fired:
    """Drift and trigger masks of one decision (names (n_envs, n_assets), rows (n_envs,))."""

    moving: np.ndarray  # names whose approved weight differs from the current one
    name_drift: np.ndarray  # names past their band tau_i
    l1: np.ndarray  # rows past the L1 drift threshold
    kill: np.ndarray
    vol_spike: np.ndarray
    spread_blow: np.ndarray
    scheduled: np.ndarray
    coded_forced: np.ndarray  # rows the gates coded FORCED_DERISK or KILL_SWITCH


@dataclass(eq=False, slots=True)
class _Plan:
    """The banded target of one decision and what lot rounding must respect."""

    betas: np.ndarray | None  # None where the beta checks are inert
    forced: np.ndarray  # (n_envs,) forced portfolios
    fz: np.ndarray | None  # forced names (None: none)
    refs: _Refs
    suppress: np.ndarray  # names whose trade a band suppressed
    any_suppress: bool
    suppressed_rows: np.ndarray
    lifted: np.ndarray  # rows whose band was lifted
    target: np.ndarray  # approved weights, current ones where suppressed


@dataclass(eq=False, slots=True)
class _Held:
    """The lot-rounded book of one decision."""

    q_fin: np.ndarray  # position in shares after the orders
    w_fin: np.ndarray  # weights recomputed from them
    delta: np.ndarray  # orders in shares
    change: np.ndarray  # names with an order to place
    scaled: np.ndarray  # names whose order was scaled to keep the book inside
    ok: np.ndarray  # (n_envs,) a rounded book passed (else the unrounded fallback)


def _round_plan(book: _Book, plan: _Plan, st: _Static) -> _Held:
    """Lot-round the banded target (+ scaling of exposure-increasing orders, see
    ``compiled.round_and_check``); a book still failing the checks takes the largest
    passing uniform shrink of its trade, else the unrounded banded target."""
    c, target, shares_per_w = book.c, plan.target, book.shares_per_w
    forced, refs, sectors, betas = plan.forced, plan.refs, book.sectors, plan.betas
    lot = st.lots(c.shape[1])
    # The book arrives as weights: a whole-lot position read back from them is off by
    # float dust (100.00000000000001). Snapped, orders are exact whole lots and a
    # close-out is exactly minus the held quantity.
    q_cur = compiled.snap_whole_lots(c * shares_per_w, lot, st.unit_lot)
    change = target != c
    if not book.every_ok:
        change &= book.price_ok
    rb = (c, plan.fz, change, q_cur, shares_per_w, lot, st.unit_lot, refs, sectors, betas)
    q_fin, w_fin, scaled, ok = _round_and_check(target, *rb)
    if not ok.all():
        # Non-forced portfolios still failing (rounding moved net or beta exposure):
        # the largest uniform shrink of the whole trade, from a fixed grid, that passes.
        for lam in _SHRINK_GRID:  # a fixed grid, not a batch loop
            todo = ~ok & ~forced
            if not todo.any():
                break
            q_l, w_l, _, ok_l = _round_and_check(c + lam * (target - c), *rb)
            ok_l &= todo
            q_fin = np.where(ok_l[:, None], q_l, q_fin)
            w_fin = np.where(ok_l[:, None], w_l, w_fin)
            scaled |= ok_l[:, None] & change
            ok |= ok_l
        # ---- last resort: the (banded) approved book itself, unrounded. Holding
        # instead could freeze a portfolio whose current and approved books sit on
        # the same binding signed limit (net, beta): every rounded step off the
        # segment breaks it.
        fb = ~ok[:, None] & change
        w_fin = np.where(fb, target, w_fin)
        q_fin = np.where(fb, target * shares_per_w, q_fin)
    delta = q_fin - q_cur
    if not change.all():
        delta = np.where(change, delta, 0.0)
    return _Held(q_fin, w_fin, delta, change, scaled, ok)


def _result(book: _Book, fired: _Fired, plan: _Plan, held: _Held) -> ExecutionResult:
    """The orders, the held book and their reason codes and trigger flags."""
    suppress = plan.suppress
    reasons, port_out = book.sym.copy(), book.port.copy()
    if plan.any_suppress:
        or_bits(reasons, _BAND, suppress)
        or_bits(port_out, _BAND, plan.suppressed_rows)
    # Rounding (and the scaling that keeps a rounded book inside) moved these names
    # off the approved weight: code them, so no weight changes without a reason.
    rounded_off = held.change & (held.w_fin != plan.target)
    if rounded_off.any():
        or_bits(reasons, _LOT, rounded_off)
        or_bits(port_out, _LOT, rows_any(rounded_off))
    masks = (  # one row per flag, in _FLAG_BITS order
        rows_any(fired.name_drift),
        fired.l1,
        fired.scheduled,
        fired.vol_spike,
        fired.spread_blow,
        fired.kill,
        plan.forced,
        plan.lifted,
        rows_any(held.scaled) & held.ok,
        ~held.ok,
    )
    flags = _FLAG_BITS @ np.array(masks, dtype=np.int64)  # exact integer sum of bits
    return ExecutionResult(
        target_weights=held.w_fin,
        delta_qty=held.delta,
        target_qty=held.q_fin,
        side=np.sign(held.delta).astype(np.int8),
        reasons=reasons,
        portfolio_reasons=port_out,
        traded=rows_any(held.delta != 0.0),
        trigger_flags=flags,
        suppressed=suppress,
    )


# ---------------------------------------------------------------------------- helpers


def _any_at_least(x: Any, threshold: float, n_envs: int) -> np.ndarray:
    if x is None:
        return np.zeros(n_envs, dtype=bool)
    arr = np.asarray(x, dtype=np.float64)
    if threshold > 0:  # a missing reading (NaN) compares False: it never fires
        hit = arr >= threshold
    else:
        hit = np.nan_to_num(arr, nan=0.0) >= threshold
    return hit if hit.shape == (n_envs,) else hit.reshape(n_envs, -1).any(axis=1)


def _round_and_check(
    target: np.ndarray,
    c: np.ndarray,
    forced: np.ndarray | None,
    change: np.ndarray,
    q_cur: np.ndarray,
    shares_per_w: np.ndarray,
    lot: np.ndarray,
    unit_lot: bool,
    refs: _Refs,
    sectors: SectorMap,
    betas: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lot-round ``target``: toward zero for forced names (``forced``, (n_envs, n_assets)
    or ``None``), toward the current position elsewhere, where exposure-increasing orders
    are then scaled down if rounding lifted gross or a sector's gross above its reference
    (``compiled.round_and_check``). Returns (quantities, weights, scaled, passes): the
    last as ``_passes``."""
    q, w, scaled, ok = compiled.round_and_check(
        target, c, forced, change, q_cur, shares_per_w, lot, unit_lot,
        refs.gross, refs.sector, refs.net, *_check_args(refs, sectors, betas),
    )  # fmt: skip
    return q, w, scaled, _factors_pass(ok, w, refs)


def _passes(w: np.ndarray, refs: _Refs, sectors: SectorMap, betas: np.ndarray | None) -> np.ndarray:
    """(n_envs,) bool: ``w`` stays within the reference exposures (float dust allowed)."""
    ok = compiled.check_books(w, *_check_args(refs, sectors, betas))
    return _factors_pass(ok, w, refs)


def _check_args(refs: _Refs, sectors: SectorMap, betas: np.ndarray | None) -> tuple[Any, ...]:
    """The exposure checks of ``compiled.check_books``: name bounds, gross, net, beta
    (``None``: unchecked) and sector gross."""
    return (
        refs.lo, refs.hi, refs.gross_tol, refs.sector_tol, refs.net_tol, betas, refs.beta_tol,
        sectors.ids,
    )  # fmt: skip


def _factors_pass(ok: np.ndarray, w: np.ndarray, refs: _Refs) -> np.ndarray:
    """``ok`` and, with a factor cap, every factor exposure of ``w`` within its reference."""
    if refs.loadings is not None and refs.factor_tol is not None:
        ok &= rows_all(np.abs(np.einsum("nmk,nm->nk", refs.loadings, w)) <= refs.factor_tol)
    return ok
