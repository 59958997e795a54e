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
from allocgym.compiled.env import reason_summary
from allocgym.compiled.execution import order_result, plan_orders
from allocgym.config import ExecutionConfig
from allocgym.errors import ConfigError, InvariantBreach, RequestError
from allocgym.risk import GateContext, GateResult, ReasonCode
from allocgym.risk.context import Bounds, SectorMap, sector_map
from allocgym.risk.gates.registry import (
    hard_ok,
    names_outside,
    portfolio_bounds,
)
from allocgym.risk.kernels import rows_all, rows_any

if TYPE_CHECKING:
    from allocgym.risk import RiskLimits

_TOL = 1e-12
"""Absolute slack (weight units) of the post-rounding exposure checks (float dust only)."""
_SHRINK_GRID = (0.99, 0.95, 0.9, 0.75, 0.5, 0.25)
"""Uniform trade shrinks tried, largest first, when a rounded book fails a check."""


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
        for name in ("name_drift_threshold", "lot_size", "portfolio_drift_threshold",
                     "vol_spike_ratio", "spread_blowout_ratio"):  # fmt: skip
            raw = np.asarray(getattr(self, name))
            if raw.dtype.kind not in "fiu" or raw.ndim > 1:
                raise ConfigError(
                    f"ExecutionParams.{name} = {getattr(self, name)!r}: pass a number"
                    f"{' or one per symbol' if name in ('name_drift_threshold', 'lot_size') else ''}"
                )
        for name in ("schedule_every", "vol_short_window", "vol_long_window", "spread_window"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise ConfigError(
                    f"ExecutionParams.{name} = {value!r}: pass a whole number of bars"
                )
        if not isinstance(self.scheduled_only, bool | np.bool_):
            raise ConfigError(
                f"ExecutionParams.scheduled_only = {self.scheduled_only!r}: pass True or False"
            )
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
    tradable: np.ndarray | None = None,
) -> Triggers:
    """Trigger inputs from trailing windows (data up to and including the decision bar).

    Parameters
    ----------
    returns : ndarray, shape (n_envs, L, n_assets)
        Simple returns, ``L >= vol_long_window``; the vol ratio is that of the
        equal-weighted mean return of the names tradable on each bar (a market-wide
        spike, not one name's).
    spread_bps : ndarray, shape (n_envs, L2, n_assets)
        Quoted spreads, ``L2 >= spread_window``; the ratio is the median, over the names
        tradable at the decision bar with a positive trailing median, of each name's last
        spread over its trailing ``spread_window`` median.
    params : ExecutionParams
    t : int or ndarray of int, shape (n_envs,), optional
        Bar index; the bar is scheduled when ``t % schedule_every == 0``.
    tradable : ndarray of bool, shape (n_envs, L, n_assets), optional
        The tradable flags of ``returns``' bars (default: every name on every bar). A
        name not listed yet, delisted or halted is left out of both ratios: its 0 return
        would damp the market's, and its 0 spread would hold the median near 1.

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
    if tradable is None:
        market = r.mean(axis=2)
        live = np.ones((s.shape[0], s.shape[2]), dtype=bool)
    else:
        tr = np.asarray(tradable, dtype=bool)
        if tr.shape != r.shape or s.shape[2] != r.shape[2]:
            raise ConfigError(
                f"trigger_inputs: tradable {tr.shape} must have the returns' shape {r.shape}, "
                f"and the spreads {s.shape} their names"
            )
        # the same sum and division as ``mean`` (bit-identical when every name trades)
        count = tr.sum(axis=2)
        market = np.where(tr, r, 0.0).sum(axis=2) / np.maximum(count, 1)
        live = tr[:, -1]
    short = market[:, -params.vol_short_window :].std(axis=1, ddof=1)
    long_ = market[:, -params.vol_long_window :].std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        vol_ratio = np.where(long_ > 0, short / long_, 1.0)
        med = np.median(s[:, -params.spread_window :], axis=1)
        last = s[:, -1]
        usable = live & (med > 0) & np.isfinite(last)
        # each row's median over its usable names, by sort (np.nanmedian costs 15x
        # np.median); the two middle values averaged as np.median does (same bits)
        k = usable.sum(axis=1)
        ranked = np.sort(np.where(usable, last / med, np.inf), axis=1)
        lo = np.take_along_axis(ranked, np.maximum((k - 1) // 2, 0)[:, None], axis=1)[:, 0]
        hi = np.take_along_axis(ranked, np.minimum(k // 2, s.shape[2] - 1)[:, None], axis=1)[:, 0]
        middle = np.where(k % 2 == 1, lo, (lo + hi) / 2)
    spread_ratio = np.where(k > 0, middle, 1.0)  # no usable name: no override
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
        a fractional held position's close-out and the unrounded fallback (``FALLBACK``
        trigger flag: no whole-lot book on the shrink grid kept every limit, e.g. a
        market-neutral book whose rounded legs break ``max_net = 0``; forced or not).
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
    factors: Bounds | None = None  # the gates' bounds, with a factor cap (their loadings)
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
        # The limits and the settling path compute on entries that are masked afterwards
        # (a zero price or equity).
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._apply(gate, ctx, triggers)

    def _apply(
        self, gate: GateResult, ctx: GateContext, triggers: Triggers | None
    ) -> ExecutionResult:
        st, p = self._tables(), self.params
        a = np.asarray(gate.approved, dtype=np.float64)
        c = np.asarray(ctx.current_weights, dtype=np.float64)
        if c.shape != a.shape:
            raise InvariantBreach(
                f"ExecutionPolicy.apply: approved {a.shape} and current {c.shape} differ"
            )
        n_envs, n_assets = a.shape
        sectors = sector_map(ctx.sector_ids, n_assets)
        betas = None
        if ctx.betas is not None:  # a missing beta (NaN) contributes nothing
            raw_betas = _fit(np.asarray(ctx.betas, np.float64), a.shape)
            betas = raw_betas if np.isfinite(raw_betas).all() else np.nan_to_num(raw_betas)
        bounds = self._bounds(ctx, n_envs, sectors, betas)
        inside, names_out, limits = _hard_limits(c, bounds, n_envs)
        sym = np.asarray(gate.symbol_reasons, dtype=np.int64)
        port = np.asarray(gate.portfolio_reasons, dtype=np.int64)
        lot = st.lots(n_assets)
        out = plan_orders(
            a, c, _fit(np.asarray(ctx.prices, dtype=np.float64), a.shape),
            _fit(np.asarray(ctx.tradable, dtype=bool), a.shape),
            np.ascontiguousarray(_fit(np.asarray(ctx.equity, dtype=np.float64), (n_envs,))),
            st.bands(n_assets),
            p.portfolio_drift_threshold, sym, port,
            self._trigger_inputs(ctx, triggers or _NO_TRIGGERS, st, n_envs), inside,
            names_out, betas, sectors.ids, sectors.n, limits, _TOL, lot, st.unit_lot,
            _PLAN_BITS,
        )  # fmt: skip
        finite, has_beta, settled, flags, forced_names, shares_per_w, q_cur = out[:7]
        banded, held = out[7:11], out[11:]
        if not finite:
            raise InvariantBreach(
                "ExecutionPolicy.apply: non-finite approved or current weights; the gates "
                "must have coded and replaced them (INVALID_INPUT)"
            )
        if not settled or (bounds is not None and bounds.loadings is not None):
            # Rare: a band to lift or a rounded book failing its checks; or a factor cap,
            # measured as the gates measure it (``Bounds.exposures``), in numpy.
            checked_betas = betas if has_beta else None
            rb = (c, forced_names, shares_per_w, q_cur, lot, st.unit_lot, sectors, checked_betas)
            refs = _refs(a, flags, rb, limits, bounds)
            banded, held = _settle(a, flags, banded, held, refs, rb)
        delta, side, reasons, port_out, traded, flags = order_result(
            sym, port, flags, *banded, q_cur, *held, _RESULT_BITS
        )
        return ExecutionResult(
            target_weights=held[1],
            delta_qty=delta,
            target_qty=held[0],
            side=side,
            reasons=reasons,
            portfolio_reasons=port_out,
            traded=traded,
            trigger_flags=flags,
            suppressed=banded[0],
        )

    def _trigger_inputs(
        self, ctx: GateContext, trig: Triggers, st: _Static, n_envs: int
    ) -> tuple[Any, ...]:
        """The trigger inputs of ``compiled.plan_orders``: the kill switches of the
        context and ``trig`` (the limits' as kill_all; the gate codes are the kernel's),
        the schedule and the risk-override ratios with their thresholds."""
        p = self.params
        kill = None
        for flag in (ctx.kill_switch, trig.kill_switch):
            if flag is not None:
                rows = _fit(np.asarray(flag, dtype=bool), (n_envs,))
                kill = rows if kill is None else kill | rows
        scheduled = trig.scheduled
        if scheduled is not None:
            scheduled = _fit(np.asarray(scheduled, dtype=bool), (n_envs,))
        return (
            kill, st.kill, scheduled,
            _ratios(trig.vol_ratio, n_envs), p.vol_spike_ratio,
            _ratios(trig.spread_ratio, n_envs), p.spread_blowout_ratio,
            p.scheduled_only,
        )  # fmt: skip

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


_PLAN_BITS = np.array(
    [
        ReasonCode.KILL_SWITCH,
        ReasonCode.FORCED_DERISK | ReasonCode.KILL_SWITCH,  # the forced codes
        TriggerFlag.NAME_DRIFT,
        TriggerFlag.PORTFOLIO_DRIFT,
        TriggerFlag.SCHEDULED,
        TriggerFlag.VOL_SPIKE,
        TriggerFlag.SPREAD_BLOWOUT,
        TriggerFlag.KILL_SWITCH,
        TriggerFlag.FORCED,
    ],
    dtype=np.int64,
)
"""The reason codes and trigger flags ``compiled.plan_orders`` reads, in its order."""
_RESULT_BITS = np.array(
    [
        ReasonCode.NO_TRADE_BAND,
        ReasonCode.LOT_ROUNDING,
        TriggerFlag.BAND_LIFTED,
        TriggerFlag.ROUNDING_SCALED,
        TriggerFlag.FALLBACK,
    ],
    dtype=np.int64,
)
"""The reason codes and trigger flags ``compiled.order_result`` sets, in its order."""
_NO_TRIGGERS = Triggers()


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
            for name, a in (("name_drift_threshold", self.tau), ("lot_size", self.lot)):
                if a.ndim and a.shape != (n_assets,):
                    raise ConfigError(
                        f"ExecutionParams.{name} has {a.shape[0]} entries for {n_assets} "
                        "symbols: pass one number, or one per symbol"
                    )
            row = self.rows[n_assets] = (_fit(self.tau, (n_assets,)), _fit(self.lot, (n_assets,)))
        return row


def _hard_limits(
    c: np.ndarray, bounds: Bounds | None, n_envs: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, float, float, float] | None]:
    """(inside, names_out, limits) of ``compiled.plan_orders``: the current book inside
    the hard limits, its names outside their caps (``None`` when inside everywhere) and
    the portfolio limits (``None`` without limits)."""
    if bounds is None:
        return np.ones(n_envs, dtype=bool), None, None
    inside = hard_ok(c, bounds)
    names_out = None if inside.all() else names_outside(c, bounds)
    beta_cap = np.inf if bounds.betas is None else bounds.beta_tol
    return inside, names_out, (bounds.gross_limit(), bounds.sector_cap, bounds.net_cap, beta_cap)


def _refs(
    a: np.ndarray,
    flags: np.ndarray,
    rb: tuple[Any, ...],
    limits: tuple[np.ndarray, float, float, float] | None,
    bounds: Bounds | None,
) -> _Refs:
    """The exposure references ``compiled.plan_orders`` checked against (see
    ``compiled.exposure_refs``), and with a factor cap its factor references (``rb`` as
    in ``_settle``)."""
    c, forced_names, *_, sectors, betas = rb
    forced = (flags & int(TriggerFlag.FORCED)) != 0
    refs = _Refs(
        *compiled.exposure_refs(
            a, c, forced, forced_names, betas, sectors.ids, sectors.n, limits, _TOL
        )
    )
    if bounds is not None and bounds.loadings is not None:
        # Lot rounding must not lift a factor exposure over the cap (or over the approved
        # book's own exposure, float dust of the gates).
        refs.factors = bounds
        factor = np.abs(bounds.exposures(a))
        refs.factor_tol = np.maximum(factor, bounds.factor_cap) + _TOL
    return refs


def _settle(
    a: np.ndarray,
    flags: np.ndarray,
    banded: tuple[np.ndarray, ...],
    held: tuple[np.ndarray, ...],
    refs: _Refs,
    rb: tuple[Any, ...],
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The banded target and the rounded book of ``compiled.plan_orders`` once the factor
    caps are checked, a failing band lifted and a failing rounded book shrunk.

    ``banded`` = (suppress, band_ok, target, change) and ``held`` = (quantities, weights,
    scaled, ok), both returned updated; ``rb`` = (current, forced_names, shares_per_w,
    q_cur, lot, unit_lot, sectors, betas), the rounding inputs. A band is lifted where the
    partly suppressed book fails the checks (with the factor caps), and the book rounded
    again. A non-forced book still failing (rounding moved net or beta exposure) takes
    the largest passing uniform shrink of its whole trade from a fixed grid, else the
    banded target unrounded.
    """
    suppress, band_ok, target, change = banded
    q_fin, w_fin, scaled, ok = held
    if refs.factors is not None:
        band_ok = _factors_pass(band_ok, target, refs) | ~rows_any(suppress)
    if not band_ok.all():
        # A lifted name was moving at a valid price: it now trades.
        lifted = suppress & ~band_ok[:, None]
        suppress = suppress & ~lifted
        target = np.where(lifted, a, target)
        change = change | lifted
        q_fin, w_fin, scaled, ok = _round_and_check(target, change, refs, rb)
    elif refs.factors is not None:
        ok = _factors_pass(ok, w_fin, refs)
    if not ok.all():
        c = rb[0]
        forced = (flags & int(TriggerFlag.FORCED)) != 0
        for lam in _SHRINK_GRID:  # a fixed grid, not a batch loop
            todo = ~ok & ~forced
            if not todo.any():
                break
            q_l, w_l, _, ok_l = _round_and_check(c + lam * (target - c), change, refs, rb)
            ok_l &= todo
            q_fin = np.where(ok_l[:, None], q_l, q_fin)
            w_fin = np.where(ok_l[:, None], w_l, w_fin)
            scaled |= ok_l[:, None] & change
            ok |= ok_l
        # ---- last resort: the (banded) approved book itself, unrounded. Holding
        # instead could freeze a portfolio whose current and approved books sit on the
        # same binding signed limit (net, beta): every rounded step off the segment
        # breaks it.
        fb = ~ok[:, None] & change
        w_fin = np.where(fb, target, w_fin)
        q_fin = np.where(fb, target * rb[2], q_fin)
    return (suppress, band_ok, target, change), (q_fin, w_fin, scaled, ok)


# ---------------------------------------------------------------------------- helpers


def _ratios(x: Any, n_envs: int) -> np.ndarray | None:
    """A risk-override ratio as (n_envs, k) floats (``None`` stays ``None``): (n_envs,) or
    (n_envs, k); any other shape refused (a reshape would regroup a wrong length)."""
    if x is None:
        return None
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:  # one ratio for every portfolio
        return np.full((n_envs, 1), float(arr))
    if arr.ndim > 2 or arr.shape[0] != n_envs:
        raise RequestError(
            f"Triggers ratio has shape {arr.shape}: pass ({n_envs},) or ({n_envs}, n_assets), "
            "one row per portfolio"
        )
    return arr.reshape(n_envs, -1)


def _round_and_check(
    target: np.ndarray, change: np.ndarray, refs: _Refs, rb: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``compiled.round_and_check`` of ``target`` as ``compiled.plan_orders`` rounds the
    banded target (``rb`` as in ``_settle``), with the factor caps checked.
    Returns (quantities, weights, scaled, passes)."""
    c, forced_names, shares_per_w, q_cur, lot, unit_lot, sectors, betas = rb
    q, w, scaled, ok = compiled.round_and_check(
        target, c, forced_names, change, q_cur, shares_per_w, lot, unit_lot,
        refs.gross, refs.sector, refs.net, *_check_args(refs, sectors, betas),
    )  # fmt: skip
    return q, w, scaled, _factors_pass(ok, w, refs)


def _check_args(refs: _Refs, sectors: SectorMap, betas: np.ndarray | None) -> tuple[Any, ...]:
    """The exposure checks of ``compiled.round_and_check``: name bounds, gross, net, beta
    (``None``: unchecked) and sector gross."""
    return (
        refs.lo, refs.hi, refs.gross_tol, refs.sector_tol, refs.net_tol, betas, refs.beta_tol,
        sectors.ids,
    )  # fmt: skip


def _factors_pass(ok: np.ndarray, w: np.ndarray, refs: _Refs) -> np.ndarray:
    """``ok`` and, with a factor cap, every factor exposure of ``w`` within its reference."""
    if refs.factors is not None and refs.factor_tol is not None:
        ok &= rows_all(np.abs(refs.factors.exposures(w)) <= refs.factor_tol)
    return ok


# ------------------------------------------------------------ between decisions
# The rebalancing rule of the bars between decisions (``env.decision_interval``), shared
# by the env, the baselines' walks and serving's hold requests.

TRADE_LIMITS = int(
    ReasonCode.TURNOVER_CAP
    | ReasonCode.PARTICIPATION_CAP
    | ReasonCode.SLIPPAGE_BUDGET
    | ReasonCode.SYMBOL_TURNOVER_CAP
    | ReasonCode.SYMBOL_SLIPPAGE_BUDGET
)
"""Reason codes of the per-decision trade limits (a target may take several bars): the
portfolio-wide ones on the portfolio, the per-symbol ones on the symbols they clipped."""


def hold_rule(
    due: np.ndarray,
    fresh: np.ndarray,
    held: np.ndarray,
    working: np.ndarray,
    current: np.ndarray,
) -> np.ndarray:
    """The rebalancing rule shared by agents (``env.decision_interval``) and baselines.

    A portfolio due for a decision proposes its fresh target; one that is not keeps
    proposing its last target while a trade limit still cuts it short (``working``), and
    otherwise proposes its current, drifted book (buy and hold: no trade).

    Parameters
    ----------
    due, working : ndarray of bool, shape (n_envs,)
    fresh, held, current : ndarray, shape (n_envs, n_assets)

    Returns
    -------
    ndarray, shape (n_envs, n_assets)
    """
    keep = np.where(working[:, None], held, current)
    return np.where(due[:, None], fresh, keep)


def next_working(
    due: np.ndarray | None,
    working: np.ndarray,
    portfolio_reasons: np.ndarray,
    symbol_reasons: np.ndarray,
) -> np.ndarray:
    """Whether each portfolio still trades towards its target after a decision.

    ``(due | working) & cut``, where ``cut`` says a per-decision trade limit
    (``TRADE_LIMITS``) bound this decision, on the portfolio (turnover, slippage budget)
    or on any of its symbols (participation, per-symbol turnover and slippage);
    ``due=None`` means every portfolio decided.
    """
    _, cut = reason_summary(
        np.asarray(symbol_reasons, dtype=np.int64),
        np.asarray(portfolio_reasons, dtype=np.int64),
        _NO_BITS,
        TRADE_LIMITS,
    )
    return still_working(due, working, cut)


def still_working(due: np.ndarray | None, working: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """:func:`next_working` from ``cut`` (a trade limit bound the decision)."""
    return cut if due is None else (due | working) & cut


_NO_BITS = np.zeros(0, dtype=np.int64)
"""No reason columns: :func:`~allocgym.compiled.env.reason_summary` for ``cut`` only."""
