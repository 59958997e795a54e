"""Permutation-equivariant asset-set networks for SB3 policies.

The observation of ``PortfolioVecEnv`` is the ``FeatureBuilder`` layout: ``n_assets``
blocks of ``n_asset_features`` (asset-major) followed by ``n_global_features``::

    obs = [x_0 (F), x_1 (F), ..., x_{N-1} (F), g (G)]

:class:`AssetSetExtractor` encodes every asset block with one shared network (EIIE, Deep
Sets), pools the embeddings into a permutation-invariant context and returns the
per-asset embeddings followed by the context. Permuting the assets of the observation
permutes the embeddings and leaves the context unchanged.

:class:`AssetSetActorCriticPolicy` (PPO, A2C) keeps that symmetry through the actor: a
shared per-asset head maps each asset's embedding (with the context) to that asset's
action, a context head gives the cash logit (long-only weights mode) or the strategy
budgets (budgets mode), and one log-std is shared by all assets. The value depends on the
context only. Every module is a standard torch op (Linear, Tanh/ReLU, mean, max, softmax,
cat, reshape, expand) so the deterministic actor traces to ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from allocgym.errors import ConfigError

Pooling = Literal["mean", "max", "mean_max", "attention"]
ActionLayout = Literal["asset_cash", "asset", "context"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass(frozen=True)
class ObsLayout:
    """Sizes of the flattened observation ``N * F + G``.

    Attributes
    ----------
    n_assets : int
        Number of asset blocks N.
    n_asset_features : int
        Features per asset F (asset-major blocks).
    n_global_features : int
        Global features G after the asset blocks.
    """

    n_assets: int
    n_asset_features: int
    n_global_features: int

    @property
    def obs_dim(self) -> int:
        """Length of the flattened observation."""
        return self.n_assets * self.n_asset_features + self.n_global_features

    def check(self, obs_dim: int) -> None:
        """Refuse an observation space whose length does not match the layout."""
        if obs_dim != self.obs_dim:
            raise ConfigError(
                f"observation length {obs_dim} != n_assets {self.n_assets} x n_asset_features "
                f"{self.n_asset_features} + n_global_features {self.n_global_features} = "
                f"{self.obs_dim}: the layout must come from the env's FeatureBuilder"
            )

    def permutation_index(self, perm: np.ndarray) -> np.ndarray:
        """Column index that reorders a flattened observation's assets by ``perm``.

        ``obs[:, layout.permutation_index(perm)]`` has asset ``perm[k]``'s block in
        position ``k``; the global features stay in place.
        """
        perm = np.asarray(perm, dtype=np.int64)
        f = self.n_asset_features
        blocks = (perm[:, None] * f + np.arange(f)[None, :]).reshape(-1)
        tail = np.arange(self.n_assets * f, self.obs_dim)
        return np.concatenate([blocks, tail])


def mlp(
    in_dim: int, sizes: tuple[int, ...] | list[int], activation: type[nn.Module]
) -> nn.Sequential:
    """Linear + activation stack; ``sizes`` empty gives the identity."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, int(size)), activation()]
        in_dim = int(size)
    return nn.Sequential(*layers)


def _out_dim(in_dim: int, sizes: tuple[int, ...] | list[int]) -> int:
    return int(sizes[-1]) if len(sizes) else in_dim


def _broadcast(ctx: th.Tensor, n_assets: int) -> th.Tensor:
    """(B, C) -> (B, N, C) without copying."""
    return ctx.unsqueeze(1).expand(-1, n_assets, -1)


class AssetPool(nn.Module):
    """Permutation-invariant pooling of (B, N, E) embeddings into (B, P).

    ``mean_max`` concatenates mean and max (P = 2E); ``attention`` weights the assets by a
    softmax over a learned score per asset (P = E).
    """

    def __init__(self, embed_dim: int, pooling: Pooling) -> None:
        super().__init__()
        if pooling not in ("mean", "max", "mean_max", "attention"):
            raise ConfigError(
                f"asset_set.pooling = {pooling!r}: use mean, max, mean_max or attention"
            )
        self.pooling = pooling
        self.out_dim = 2 * embed_dim if pooling == "mean_max" else embed_dim
        self.score = nn.Linear(embed_dim, 1) if pooling == "attention" else None

    def forward(self, h: th.Tensor) -> th.Tensor:
        if self.pooling == "mean":
            return h.mean(dim=1)
        if self.pooling == "max":
            return h.max(dim=1).values
        if self.pooling == "mean_max":
            return th.cat([h.mean(dim=1), h.max(dim=1).values], dim=1)
        assert self.score is not None
        attn = th.softmax(self.score(h).squeeze(-1), dim=1)  # (B, N)
        return (attn.unsqueeze(-1) * h).sum(dim=1)


class AssetSetExtractor(BaseFeaturesExtractor):
    """Shared per-asset encoder plus pooled context (SB3 features extractor).

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box
        Flat observation of length ``n_assets * n_asset_features + n_global_features``.
    n_assets, n_asset_features, n_global_features : int
        The FeatureBuilder layout (read from the env, never hard-coded).
    encoder : sequence of int
        Hidden sizes of the shared per-asset encoder; the last is the embedding size E.
    global_encoder : sequence of int
        Hidden sizes of the global-feature encoder (output size Gd; G when empty).
    pooling : {"mean", "max", "mean_max", "attention"}
    context_mixing : bool
        One extra shared layer over ``[h_i, pool(h)]`` before the final pooling.
    activation : {"tanh", "relu"}

    Output
    ------
    features : Tensor, shape (B, N * E + C)
        Per-asset embeddings (asset-major), then the context ``[pool(h), g_enc]`` of size C.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        n_assets: int,
        n_asset_features: int,
        n_global_features: int,
        encoder: tuple[int, ...] | list[int] = (64, 64),
        global_encoder: tuple[int, ...] | list[int] = (32,),
        pooling: Pooling = "mean_max",
        context_mixing: bool = True,
        activation: str = "tanh",
    ) -> None:
        layout = ObsLayout(int(n_assets), int(n_asset_features), int(n_global_features))
        layout.check(int(np.prod(observation_space.shape)))
        if not encoder:
            raise ConfigError(
                "asset_set.encoder is empty: give at least one hidden size, e.g. [64]"
            )
        act = ACTIVATIONS[activation]
        g_dim = (
            _out_dim(layout.n_global_features, global_encoder) if layout.n_global_features else 0
        )
        embed = int(encoder[-1])
        pool = AssetPool(embed, pooling)
        ctx_dim = pool.out_dim + g_dim
        super().__init__(observation_space, features_dim=layout.n_assets * embed + ctx_dim)
        self.layout = layout
        self.embed_dim = embed
        self.context_dim = ctx_dim
        self.global_dim = g_dim
        self.global_net = mlp(layout.n_global_features, global_encoder, act) if g_dim else None
        self.asset_net = mlp(layout.n_asset_features + g_dim, encoder, act)
        self.mix_net = (
            nn.Sequential(nn.Linear(embed + pool.out_dim, embed), act()) if context_mixing else None
        )
        self.pool = pool

    def split(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """(B, obs_dim) -> asset blocks (B, N, F) and globals (B, G)."""
        n, f = self.layout.n_assets, self.layout.n_asset_features
        return obs[:, : n * f].reshape(-1, n, f), obs[:, n * f :]

    def embed(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Per-asset embeddings (B, N, E) and context (B, C)."""
        assets, globals_ = self.split(obs)
        n = self.layout.n_assets
        if self.global_net is not None:
            g = self.global_net(globals_)
            x = th.cat([assets, _broadcast(g, n)], dim=-1)
        else:
            g = globals_[:, :0]
            x = assets
        h = self.asset_net(x)
        pooled = self.pool(h)
        if self.mix_net is not None:
            h = self.mix_net(th.cat([h, _broadcast(pooled, n)], dim=-1))
            pooled = self.pool(h)
        return h, th.cat([pooled, g], dim=1)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        h, ctx = self.embed(observations)
        return th.cat([h.reshape(h.shape[0], -1), ctx], dim=1)


class AssetSetHeads(nn.Module):
    """Latent actor/critic heads over the extractor output (SB3 ``mlp_extractor`` role).

    Actor latent: ``[z_0 .. z_{N-1}, z_ctx]`` with ``z_i = pi_asset([h_i, ctx])`` (shared
    weights) and ``z_ctx = pi_ctx(ctx)``. Critic latent: ``vf(ctx)``, permutation-invariant.
    """

    def __init__(
        self,
        n_assets: int,
        embed_dim: int,
        context_dim: int,
        head: tuple[int, ...] | list[int],
        activation: type[nn.Module],
    ) -> None:
        super().__init__()
        self.n_assets = n_assets
        self.embed_dim = embed_dim
        self.pi_asset = mlp(embed_dim + context_dim, head, activation)
        self.pi_ctx = mlp(context_dim, head, activation)
        self.vf = mlp(context_dim, head, activation)
        self.asset_latent = _out_dim(embed_dim + context_dim, head)
        self.ctx_latent = _out_dim(context_dim, head)
        self.latent_dim_pi = n_assets * self.asset_latent + self.ctx_latent
        self.latent_dim_vf = _out_dim(context_dim, head)

    def _split(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        n, e = self.n_assets, self.embed_dim
        return features[:, : n * e].reshape(-1, n, e), features[:, n * e :]

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        h, ctx = self._split(features)
        z = self.pi_asset(th.cat([h, _broadcast(ctx, self.n_assets)], dim=-1))
        return th.cat([z.reshape(z.shape[0], -1), self.pi_ctx(ctx)], dim=1)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.vf(self._split(features)[1])

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class AssetSetActionNet(nn.Module):
    """Mean action from the actor latent.

    ``asset_cash`` (long-only weights: N asset logits then the cash logit), ``asset``
    (long/short weights: N outputs) or ``context`` (budgets: ``action_dim`` outputs of the
    context latent, permutation-invariant).
    """

    def __init__(
        self,
        n_assets: int,
        asset_latent: int,
        ctx_latent: int,
        action_dim: int,
        layout: ActionLayout,
    ) -> None:
        super().__init__()
        self.n_assets = n_assets
        self.asset_latent = asset_latent
        self.layout = layout
        self.asset_out = nn.Linear(asset_latent, 1) if layout != "context" else None
        ctx_out = {"asset_cash": 1, "asset": 0, "context": action_dim}[layout]
        self.ctx_out = nn.Linear(ctx_latent, ctx_out) if ctx_out else None

    def forward(self, latent: th.Tensor) -> th.Tensor:
        n, a = self.n_assets, self.asset_latent
        parts = []
        if self.asset_out is not None:
            z = latent[:, : n * a].reshape(-1, n, a)
            parts.append(self.asset_out(z).squeeze(-1))
        if self.ctx_out is not None:
            parts.append(self.ctx_out(latent[:, n * a :]))
        return parts[0] if len(parts) == 1 else th.cat(parts, dim=1)


def action_layout_for(mode: str, long_only: bool) -> ActionLayout:
    """Head structure for an ``ActionSpec`` mode.

    Long-only ``weights``: ``asset_cash`` (N asset logits, then the cash logit, as in
    ``ActionSpec``); long/short ``weights``: ``asset``; ``budgets``: ``context``;
    ``tilt``: ``asset_cash`` (N per-asset tilts, then the gross head).
    """
    if mode == "budgets":
        return "context"
    return "asset_cash" if long_only or mode == "tilt" else "asset"


class AssetSetActorCriticPolicy(ActorCriticPolicy):
    """PPO/A2C policy whose actor is permutation-equivariant in the assets.

    Takes the ``ActorCriticPolicy`` arguments plus ``head`` (hidden sizes of the per-asset
    and context heads) and ``action_layout`` (see :func:`action_layout_for`). ``features_extractor_class`` is always :class:`AssetSetExtractor`;
    its layout comes through ``features_extractor_kwargs``. The Gaussian log-std has one
    entry for all assets (and one for the cash logit / one per budget), so the action
    distribution, not only its mean, is equivariant.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Any,
        *args: Any,
        head: tuple[int, ...] | list[int] = (64,),
        action_layout: ActionLayout = "asset_cash",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("use_sde"):
            raise ConfigError("AssetSetActorCriticPolicy does not support gSDE: set use_sde=False")
        kwargs["features_extractor_class"] = AssetSetExtractor
        kwargs["share_features_extractor"] = True
        if action_layout not in ("asset_cash", "asset", "context"):
            raise ConfigError(
                f"action_layout = {action_layout!r}: use asset_cash, asset or context"
            )
        self.head = tuple(int(h) for h in head)
        self.action_layout: ActionLayout = action_layout
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["head"] = self.head
        data["action_layout"] = self.action_layout
        return data

    def _build_mlp_extractor(self) -> None:
        ext = self.features_extractor
        assert isinstance(ext, AssetSetExtractor)
        self.mlp_extractor = AssetSetHeads(
            ext.layout.n_assets, ext.embed_dim, ext.context_dim, self.head, self.activation_fn
        ).to(self.device)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ConfigError(
                f"AssetSetActorCriticPolicy needs a Box action space, got {self.action_space}"
            )
        heads = self.mlp_extractor
        assert isinstance(heads, AssetSetHeads)
        action_dim = int(np.prod(self.action_space.shape))
        n = heads.n_assets
        expected = {"asset_cash": n + 1, "asset": n}.get(self.action_layout, action_dim)
        if action_dim != expected:
            raise ConfigError(
                f"action_layout {self.action_layout!r} with {n} assets needs {expected} actions, "
                f"the action space has {action_dim}: build the policy from the env's ActionSpec"
            )
        self.action_net = AssetSetActionNet(
            n, heads.asset_latent, heads.ctx_latent, action_dim, self.action_layout
        ).to(self.device)
        n_std = {"asset_cash": 2, "asset": 1, "context": action_dim}[self.action_layout]
        self.log_std = nn.Parameter(
            th.full((n_std,), float(self.log_std_init), device=self.device), requires_grad=True
        )
        if self.ortho_init:
            self.action_net.apply(lambda m: self.init_weights(m, gain=0.01))
        # super()._build made the optimizer over the replaced modules: rebuild it.
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def full_log_std(self) -> th.Tensor:
        """Per-action log-std (action_dim,) expanded from the shared parameters."""
        n = self.mlp_extractor.n_assets
        if self.action_layout == "asset_cash":
            return th.cat([self.log_std[:1].expand(n), self.log_std[1:]])
        if self.action_layout == "asset":
            return self.log_std.expand(n)
        return self.log_std

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        mean_actions = self.action_net(latent_pi)
        assert isinstance(self.action_dist, DiagGaussianDistribution)
        return self.action_dist.proba_distribution(mean_actions, self.full_log_std())


class DeterministicActor(nn.Module):
    """Deterministic actor of an on-policy SB3 policy: observation -> clipped mean action.

    Parameters
    ----------
    policy : ActorCriticPolicy
        A trained PPO/A2C policy (MLP or asset-set).

    The forward pass equals ``policy.predict(obs, deterministic=True)`` on already
    normalised observations: extractor -> actor latent -> action net -> clip to the Box.
    Made of standard torch ops, ready for ``torch.onnx.export``.
    """

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        if not isinstance(policy.action_space, gym.spaces.Box):
            raise ConfigError(
                f"DeterministicActor needs a Box action space, got {policy.action_space}"
            )
        self.extractor = policy.pi_features_extractor
        self.mlp_extractor = policy.mlp_extractor
        self.action_net = policy.action_net
        self.register_buffer("low", th.as_tensor(policy.action_space.low, dtype=th.float32))
        self.register_buffer("high", th.as_tensor(policy.action_space.high, dtype=th.float32))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        latent = self.mlp_extractor.forward_actor(self.extractor(obs))
        return th.clamp(self.action_net(latent), self.low, self.high)
