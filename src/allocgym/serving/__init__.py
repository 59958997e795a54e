"""Frozen-policy production path: torch-free runtime, FrozenAllocator, HTTP service.

- :mod:`allocgym.serving.bundle`: ``FrozenPolicy.load(dir)`` verifies and runs an ONNX
  bundle written by ``allocgym export`` (onnxruntime, one thread, deterministic);
- :mod:`allocgym.serving.schemas`: ``DecisionRequest`` / ``Decision`` (pydantic);
- :mod:`allocgym.serving.allocator`: ``FrozenAllocator`` = FeatureBuilder + FrozenPolicy
  + RiskGateChain + ExecutionPolicy (+ IntentAggregator), with coded rejects and the
  MODEL_FALLBACK / ALLOCATOR_DISABLED defensive allocation;
- :mod:`allocgym.serving.flags`: the ``TRADING_ALLOCATOR_*`` runtime flags;
- :mod:`allocgym.serving.service`: metrics, audit log, idempotency, kill switch, replay;
- :mod:`allocgym.serving.worker`: where the HTTP service decides: a worker thread, or
  a decision process holding the service (``ProcessWorker(ServiceSpec(bundle, ...))``,
  ``allocgym serve``'s default);
- :mod:`allocgym.serving.http`: the FastAPI app behind ``allocgym serve`` (imported on
  demand: ``import allocgym.serving.http``).

Importing this package imports neither torch, stable-baselines3 nor gymnasium, and
nothing in it unpickles (``tests/test_serving.py`` checks both).
"""

from __future__ import annotations

from allocgym.serving.allocator import DecisionTrace, FrozenAllocator, request_from_market
from allocgym.serving.bundle import MANIFEST_SCHEMA, ONNX_OPSET, FrozenPolicy
from allocgym.serving.flags import RuntimeFlags
from allocgym.serving.schemas import (
    DECISION_SCHEMA,
    Decision,
    DecisionRequest,
    RegimeOverride,
    decode_array,
    encode_array,
)
from allocgym.serving.service import DecisionService, ServingMetrics, replay_audit

__all__ = [
    "DECISION_SCHEMA",
    "MANIFEST_SCHEMA",
    "ONNX_OPSET",
    "Decision",
    "DecisionRequest",
    "DecisionService",
    "DecisionTrace",
    "FrozenAllocator",
    "FrozenPolicy",
    "RegimeOverride",
    "RuntimeFlags",
    "ServingMetrics",
    "decode_array",
    "encode_array",
    "replay_audit",
    "request_from_market",
]
