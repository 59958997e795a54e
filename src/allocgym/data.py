"""Market data: the immutable ``MarketData`` type and its loaders.

Arrays are float64, time-first: ``close[t, i]`` is the close of symbol ``i`` at bar ``t``.
A symbol not yet listed has NaN closes in a leading stretch and ``tradable`` False there.
``window(t)`` is the past-only view used by everything that makes decisions at bar ``t``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from allocgym.config import DataConfig, SyntheticConfig
from allocgym.errors import DataError

# GICS sectors of the 20 symbols in skfolio's S&P 500 sample. Source: S&P Dow Jones
# Indices' GICS classification as listed for S&P 500 constituents (Dec 2022); RRC (Range
# Resources) left the index in 2016 and keeps its GICS sector, Energy.
SP500_SECTORS: dict[str, str] = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "BAC": "Financials",
    "BBY": "Consumer Discretionary",
    "CVX": "Energy",
    "GE": "Industrials",
    "HD": "Consumer Discretionary",
    "JNJ": "Health Care",
    "JPM": "Financials",
    "KO": "Consumer Staples",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "MSFT": "Information Technology",
    "PEP": "Consumer Staples",
    "PFE": "Health Care",
    "PG": "Consumer Staples",
    "RRC": "Energy",
    "UNH": "Health Care",
    "WMT": "Consumer Staples",
    "XOM": "Energy",
}

# Names of the synthetic generator's true regimes, indexed by ``MarketData.regimes``.
SYNTHETIC_REGIMES: tuple[str, ...] = ("calm_trend", "mean_reverting", "high_vol_crash")


def _frozen(a: np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class MarketData:
    """Immutable daily market data for ``n_assets`` symbols over ``n_days`` bars.

    Attributes
    ----------
    dates : ndarray of datetime64[ns], shape (n_days,)
        Strictly increasing bar dates.
    symbols : tuple of str, length n_assets
    close : ndarray, shape (n_days, n_assets)
        Close prices (> 0); NaN only in a leading not-yet-listed stretch.
    volume : ndarray, shape (n_days, n_assets)
        Shares traded per bar (>= 0).
    spread_bps : ndarray, shape (n_days, n_assets)
        Quoted bid-ask spread in bps of price.
    sectors : tuple of str, length n_assets
        Sector label per symbol.
    benchmark_returns : ndarray, shape (n_days,)
        Simple returns of the benchmark; row 0 is 0.
    tradable : ndarray of bool, shape (n_days, n_assets)
    defaulted : tuple of str
        Fields filled with documented defaults because the source lacks them.
    regimes : ndarray of int8, shape (n_days,), or None
        True regime path (synthetic data only), indices into ``SYNTHETIC_REGIMES``.
    name : str
        Human-readable source name.
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    close: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    sectors: tuple[str, ...]
    benchmark_returns: np.ndarray
    tradable: np.ndarray
    defaulted: tuple[str, ...] = ()
    regimes: np.ndarray | None = None
    name: str = "custom"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "dates", _frozen(np.asarray(self.dates, dtype="datetime64[ns]"), "datetime64[ns]"))
        set_(self, "symbols", tuple(str(s) for s in self.symbols))
        set_(self, "sectors", tuple(str(s) for s in self.sectors))
        for name in ("close", "volume", "spread_bps"):
            set_(self, name, _frozen(getattr(self, name), np.float64))
        set_(self, "benchmark_returns", _frozen(self.benchmark_returns, np.float64))
        set_(self, "tradable", _frozen(self.tradable, bool))
        if self.regimes is not None:
            set_(self, "regimes", _frozen(self.regimes, np.int8))
        validate(self)

    # ------------------------------------------------------------------ shape helpers
    @property
    def n_days(self) -> int:
        return int(self.close.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.close.shape[1])

    @cached_property
    def sector_names(self) -> tuple[str, ...]:
        """Distinct sector labels in sorted order (``sector_ids`` index into it)."""
        return tuple(sorted(set(self.sectors)))

    @cached_property
    def sector_ids(self) -> np.ndarray:
        """Integer sector id per symbol, shape (n_assets,)."""
        lookup = {s: i for i, s in enumerate(self.sector_names)}
        return _frozen(np.array([lookup[s] for s in self.sectors], dtype=np.int64), np.int64)

    @cached_property
    def returns(self) -> np.ndarray:
        """Simple close-to-close returns, shape (n_days, n_assets); 0 where not tradable
        at either end and at row 0."""
        c = self.close
        r = np.zeros_like(c)
        with np.errstate(invalid="ignore", divide="ignore"):
            r[1:] = c[1:] / c[:-1] - 1.0
        r[~np.isfinite(r)] = 0.0
        r[1:][~(self.tradable[1:] & self.tradable[:-1])] = 0.0
        return _frozen(r, np.float64)

    @cached_property
    def adv_notional(self) -> np.ndarray:
        """Trailing 21-bar mean traded notional (volume * close) up to and including t,
        shape (n_days, n_assets). Causal: row t uses rows <= t only."""
        notional = np.nan_to_num(self.volume * self.close, nan=0.0)
        adv = pd.DataFrame(notional).rolling(21, min_periods=1).mean().to_numpy()
        return _frozen(adv, np.float64)

    # ------------------------------------------------------------------ views
    def window(self, t: int) -> MarketData:
        """Past-only view: rows ``0..t`` inclusive. Nothing after bar ``t`` is reachable."""
        t = int(t)
        if not 0 <= t < self.n_days:
            raise IndexError(f"window({t}) outside 0..{self.n_days - 1}")
        return self.rows(0, t + 1)

    def rows(self, start: int, stop: int) -> MarketData:
        """Rows ``start..stop-1`` as a new ``MarketData`` (benchmark row ``start`` kept as is)."""
        sl = slice(start, stop)
        return MarketData(
            dates=self.dates[sl],
            symbols=self.symbols,
            close=self.close[sl],
            volume=self.volume[sl],
            spread_bps=self.spread_bps[sl],
            sectors=self.sectors,
            benchmark_returns=self.benchmark_returns[sl],
            tradable=self.tradable[sl],
            defaulted=self.defaulted,
            regimes=None if self.regimes is None else self.regimes[sl],
            name=self.name,
        )

    def index_of(self, date: str | np.datetime64 | pd.Timestamp) -> int:
        """Index of the last bar on or before ``date``."""
        d = np.datetime64(pd.Timestamp(date), "ns")
        i = int(np.searchsorted(self.dates, d, side="right")) - 1
        if i < 0:
            raise DataError(f"date {date} is before the first bar {self.dates[0]}")
        return i


def validate(md: MarketData, min_history: int = 2) -> None:
    """Refuse inconsistent data with a ``DataError`` naming the offending dates/symbols."""
    t, n = md.close.shape if md.close.ndim == 2 else (None, None)
    if md.close.ndim != 2:
        raise DataError(f"close must be 2-D (n_days, n_assets), got shape {md.close.shape}")
    for name in ("volume", "spread_bps", "tradable"):
        shape = getattr(md, name).shape
        if shape != (t, n):
            raise DataError(f"{name} has shape {shape}, close has {(t, n)}: align them")
    if md.dates.shape != (t,):
        raise DataError(f"dates has shape {md.dates.shape}, expected ({t},)")
    if md.benchmark_returns.shape != (t,):
        raise DataError(f"benchmark_returns has shape {md.benchmark_returns.shape}, expected ({t},)")
    if len(md.symbols) != n or len(md.sectors) != n:
        raise DataError(f"{len(md.symbols)} symbols / {len(md.sectors)} sectors for {n} columns")
    if md.regimes is not None and md.regimes.shape != (t,):
        raise DataError(f"regimes has shape {md.regimes.shape}, expected ({t},)")


# ---------------------------------------------------------------------------- defaults


def _default_volume(close: np.ndarray, adv_notional: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        vol = adv_notional / close
    return np.where(np.isfinite(vol), vol, 0.0)


def _default_spread(close: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Spread proxy from trailing (causal) 21-bar volatility of log returns, in bps."""
    logr = np.diff(np.log(close), axis=0, prepend=np.nan)
    vol = pd.DataFrame(logr).rolling(21, min_periods=2).std().to_numpy()
    spread = cfg.default_spread_vol_mult * vol * 1e4
    spread = np.where(np.isfinite(spread), spread, cfg.spread_cap_bps)
    return np.clip(spread, cfg.spread_floor_bps, cfg.spread_cap_bps)


# ---------------------------------------------------------------------------- loaders


def load_sp500(cfg: DataConfig | None = None) -> MarketData:
    """The real S&P 500 sample bundled with skfolio: 20 stocks, daily 1990-01-02..2022-12-28.

    The benchmark is the S&P 500 index. The sample has no volume or spread: volume is
    ``cfg.default_adv_notional / close`` (constant traded notional) and the spread is
    ``cfg.default_spread_vol_mult`` times trailing 21-day volatility, clamped to
    ``[spread_floor_bps, spread_cap_bps]``. A ``UserWarning`` says so, and
    ``MarketData.defaulted`` lists both fields.
    """
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    cfg = cfg or DataConfig()
    prices = load_sp500_dataset()
    index = load_sp500_index().iloc[:, 0]
    close = prices.to_numpy(dtype=np.float64)
    bench = index.to_numpy(dtype=np.float64)
    bench_ret = np.zeros_like(bench)
    bench_ret[1:] = bench[1:] / bench[:-1] - 1.0
    warnings.warn(
        "S&P 500 sample has no volume or spread: using default ADV notional "
        f"{cfg.default_adv_notional:.3g} and spread = {cfg.default_spread_vol_mult} x trailing "
        f"volatility clamped to [{cfg.spread_floor_bps}, {cfg.spread_cap_bps}] bps",
        UserWarning,
        stacklevel=2,
    )
    symbols = tuple(prices.columns)
    return MarketData(
        dates=prices.index.to_numpy(dtype="datetime64[ns]"),
        symbols=symbols,
        close=close,
        volume=_default_volume(close, cfg.default_adv_notional),
        spread_bps=_default_spread(close, cfg),
        sectors=tuple(SP500_SECTORS[s] for s in symbols),
        benchmark_returns=bench_ret,
        tradable=np.isfinite(close),
        defaulted=("volume", "spread_bps"),
        name="sp500",
    )


def synthetic(
    n_assets: int = 20,
    n_days: int = 2520,
    seed: int = 0,
    *,
    n_sectors: int = 4,
    signal_strength: float = 0.0,
) -> MarketData:
    """Seeded regime-switching market with volumes, spreads and the true regime path.

    Three regimes (``SYNTHETIC_REGIMES``) switch by a sticky Markov chain:

    - ``calm_trend``: positive drift, low volatility, moderate correlation; with
      ``signal_strength`` > 0 every asset also gets a drift drawn at each entry into the
      regime and held for the whole spell (a momentum signal an agent can learn);
    - ``mean_reverting``: no drift, idiosyncratic returns with negative lag-1
      autocorrelation (stronger with ``signal_strength``);
    - ``high_vol_crash``: negative drift, high volatility, high correlation, wider spreads.

    Returns are a one-factor model (market loading 0.7..1.3 per asset) plus idiosyncratic
    noise. The benchmark is the equal-weighted mean of the asset returns. Same arguments,
    identical data.
    """
    if n_assets < 1 or n_days < 2:
        raise DataError(f"synthetic needs n_assets >= 1 and n_days >= 2, got {n_assets}, {n_days}")
    rng = np.random.default_rng(seed)
    stay = np.array([0.985, 0.98, 0.96])
    trans = np.array([[0.0, 0.7, 0.3], [0.7, 0.0, 0.3], [0.5, 0.5, 0.0]])
    mkt_drift = np.array([0.0006, 0.0, -0.0015])
    mkt_vol = np.array([0.007, 0.011, 0.028])
    idio_vol = np.array([0.009, 0.014, 0.02])
    phi = np.array([0.0, -min(0.9, 0.25 + 0.5 * signal_strength), 0.0])
    spread_scale = np.array([1.0, 1.3, 3.0])
    volume_scale = np.array([1.0, 1.1, 1.8])

    regimes = np.empty(n_days, dtype=np.int8)
    u_stay = rng.random(n_days)
    u_next = rng.random(n_days)
    k = 0
    for t in range(n_days):  # the Markov chain is sequential by nature
        if t > 0 and u_stay[t] > stay[k]:
            k = int(np.searchsorted(np.cumsum(trans[k]), u_next[t]))
        regimes[t] = k

    loadings = rng.uniform(0.7, 1.3, n_assets)
    f = mkt_drift[regimes] + mkt_vol[regimes] * rng.standard_normal(n_days)
    noise = idio_vol[regimes][:, None] * rng.standard_normal((n_days, n_assets))
    spell_start = np.r_[True, regimes[1:] != regimes[:-1]]
    spell_drift = rng.normal(0.0, 0.002 * signal_strength, (n_days, n_assets))
    idio = np.empty((n_days, n_assets))
    drift = np.zeros(n_assets)
    prev = np.zeros(n_assets)
    for t in range(n_days):  # AR(1) recursion and per-spell drifts are sequential
        if spell_start[t]:
            drift = spell_drift[t] if regimes[t] == 0 else np.zeros(n_assets)
        prev = phi[regimes[t]] * prev + noise[t]
        idio[t] = prev + drift
    rets = loadings[None, :] * f[:, None] + idio
    rets[0] = 0.0
    close = 100.0 * np.exp(np.cumsum(np.log1p(np.clip(rets, -0.95, None)), axis=0))

    base_shares = rng.lognormal(np.log(2e6), 0.5, n_assets)
    volume = base_shares * volume_scale[regimes][:, None] * rng.lognormal(0.0, 0.2, (n_days, n_assets))
    base_spread = rng.uniform(2.0, 10.0, n_assets)
    spread = base_spread * spread_scale[regimes][:, None] * rng.lognormal(0.0, 0.1, (n_days, n_assets))
    dates = pd.bdate_range("2000-01-03", periods=n_days).to_numpy(dtype="datetime64[ns]")
    return MarketData(
        dates=dates,
        symbols=tuple(f"S{i:03d}" for i in range(n_assets)),
        close=close,
        volume=volume,
        spread_bps=spread,
        sectors=tuple(f"sector_{i % n_sectors}" for i in range(n_assets)),
        benchmark_returns=np.r_[0.0, rets[1:].mean(axis=1)],
        tradable=np.ones((n_days, n_assets), dtype=bool),
        regimes=regimes,
        name=f"synthetic(seed={seed})",
    )


def synthetic_from_config(cfg: SyntheticConfig) -> MarketData:
    """``synthetic`` with the parameters of a ``SyntheticConfig``."""
    return synthetic(
        cfg.n_assets,
        cfg.n_days,
        cfg.seed,
        n_sectors=cfg.n_sectors,
        signal_strength=cfg.signal_strength,
    )
