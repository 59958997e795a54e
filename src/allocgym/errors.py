"""One small error hierarchy. Every message names the object, the bad value and the fix."""

from __future__ import annotations


class AllocgymError(Exception):
    """Base class of every error allocgym raises on purpose."""


class ConfigError(AllocgymError, ValueError):
    """A configuration value or key was rejected (message gives the dotted path and the rule)."""


class GateConfigError(ConfigError):
    """Risk limits that cannot be enforced together (e.g. min multiplier above max)."""


class DataError(AllocgymError, ValueError):
    """Market data failed validation (message names the dates/symbols and the fix)."""


class OptimizationError(AllocgymError):
    """An optimizer-based allocator could not produce weights."""


class Infeasible(OptimizationError):
    """The constraint set admits no solution; the message names the constraints involved."""


class SolverFailed(OptimizationError):
    """The solver stopped without a usable solution (numerical trouble, iteration limit)."""


class InvariantBreach(AllocgymError, AssertionError):
    """A post-risk hard invariant does not hold: always a bug in allocgym, never user error."""


class ExportParityError(AllocgymError):
    """The exported ONNX policy disagrees with the SB3 policy beyond tolerance."""


class BundleError(AllocgymError):
    """A frozen-policy bundle failed verification (hash, layout, opset, paths)."""


class ClusterError(AllocgymError, RuntimeError):
    """A Ray cluster could not be reached or could not run the work (message names the fix)."""


class RequestError(AllocgymError, ValueError):
    """A production decision request is malformed (message names the field and the fix)."""


class DataWarning(UserWarning):
    """Data loaded with a caveat: a field filled with its documented default, a limit the
    data cannot support (no sectors), or suspicious moves. The CLI prints these once as a
    plain ``note:`` line."""
