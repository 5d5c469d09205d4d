"""The faults: one table for the defaults, the validation and ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["CASCADE", "TIMED", "Faults", "add_fault_options", "faults_from_args", "split_timed"]

Kind = Literal["ms", "seconds", "probability", "count", "flag", "token", "seed"]
_METAVAR = {"ms": "MS", "seconds": "S", "probability": "P", "count": "N", "token": "TOKEN"}


def _fault(default: Any, kind: Kind, text: str) -> Any:
    return dataclasses.field(default=default, metadata={"kind": kind, "help": text})


@dataclasses.dataclass(frozen=True, slots=True)
class Faults:
    """How the simulator misbehaves. Rates are probabilities per send request."""

    latency: float = _fault(0.0, "ms", "answer after this long")
    latency_jitter: float = _fault(0.0, "ms", "the latency varies uniformly by ± this")
    fail_rate: float = _fault(0.0, "probability", "500 with a JSON body")
    reset_rate: float = _fault(0.0, "probability", "reset the connection (TCP RST), no answer")
    hang_rate: float = _fault(0.0, "probability", "never answer (not accepted)")
    rate_limit_rate: float = _fault(0.0, "probability", "429 with Retry-After: --retry-after")
    garbage_rate: float = _fault(0.0, "probability", "200 with a body that is not a success")
    nul_rate: float = _fault(
        0.0,
        "probability",
        "a hostile body: a 500 'boom\\x00bad', a 200 with a JSON \\u0000, a 200 of raw NUL and"
        " bytes that are not UTF-8, or a 500 of ~1 MB (not accepted)",
    )
    accept_hang_rate: float = _fault(
        0.0, "probability", "accept (record the id), then never answer"
    )
    accept_late_rate: float = _fault(
        0.0, "probability", "accept, then answer 200 after --late-by instead of the latency"
    )
    late_by: float = _fault(1000.0, "ms", "delay of --accept-late-rate's answers")
    reject_rate: float = _fault(0.0, "probability", "400 for good: the same ids every time")
    retry_after_first: int = _fault(
        0, "count", "429 to the first N attempts of each msgId (counted from when it is set)"
    )
    retry_after: float = _fault(1.0, "seconds", "Retry-After of simulated 429s")
    max_rps: int = _fault(
        0, "count", "let at most N requests through in any one second (sliding); 429 beyond"
    )
    max_rps_fixed: int = _fault(
        0, "count", "let at most N requests through in each whole second (fixed); 429 beyond"
    )
    down: bool = _fault(False, "flag", "start down (every send connection reset at once)")
    outage_every: float = _fault(0.0, "seconds", "an outage starts every S seconds...")
    outage_for: float = _fault(0.0, "seconds", "...and lasts S seconds")
    token: str | None = _fault(None, "token", "require Authorization: Bearer TOKEN")
    seed: int | None = _fault(None, "seed", "seed of the random faults")

    def replace(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` (names with ``-`` or ``_``) applied; ValueError if invalid."""
        values: dict[str, Any] = {}
        for raw_name, value in changes.items():
            name = raw_name.replace("-", "_")
            kind = _KINDS.get(name)
            if kind is None:
                raise ValueError(f"unknown fault {raw_name!r}")
            values[name] = _check(name, kind, value)
        faults = dataclasses.replace(self, **values)
        if faults.outage_every and not 0 < faults.outage_for < faults.outage_every:
            raise ValueError("outage_for must be between 0 and outage_every")
        if sum(getattr(faults, name) for name in CASCADE) > 1 + 1e-9:  # 0.1 + 0.2 + 0.7
            raise ValueError(f"{', '.join(CASCADE)} must add up to at most 1")
        return faults

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_KINDS: dict[str, Kind] = {f.name: f.metadata["kind"] for f in dataclasses.fields(Faults)}

# Drawn from one random number per request, in this order, so they exclude
# each other and must add up to at most 1.
CASCADE = (
    "reset_rate",
    "hang_rate",
    "fail_rate",
    "rate_limit_rate",
    "garbage_rate",
    "nul_rate",
    "accept_hang_rate",
    "accept_late_rate",
)

# Windows that end by themselves: S seconds from when they are set.
TIMED = {
    "down_for": "be down for S seconds (every send connection reset at once)",
    "unauthorized_for": "401 to every send request for S seconds (a revoked token)",
    "forbidden_for": "403 to every send request for S seconds",
}


def _check(name: str, kind: Kind, value: Any) -> Any:
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if kind in ("token", "seed"):
        expected = str if kind == "token" else int
        if value is not None and type(value) is not expected:
            raise ValueError(f"{name} must be a {expected.__name__} or null")
        return value
    if kind == "count":
        if type(value) is not int or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ValueError(f"{name} must be a number >= 0")
    if kind == "probability" and value > 1:
        raise ValueError(f"{name} must be a probability between 0 and 1")
    return float(value)


def split_timed(changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """(fault changes, timed windows) of ``changes``; ValueError if a window is not > 0."""
    faults: dict[str, Any] = {}
    timed: dict[str, float] = {}
    for raw_name, value in changes.items():
        name = raw_name.replace("-", "_")
        if name not in TIMED:
            faults[raw_name] = value
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
            raise ValueError(f"{name} must be a number of seconds > 0")
        else:
            timed[name] = float(value)
    return faults, timed


# -- the command line ---------------------------------------------------------------


_TYPE_ERRORS = {
    "probability": "must be a probability between 0 and 1",
    "count": "must be a whole number >= 0",
    "seed": "must be an integer",
}


def _number(kind: Kind) -> Any:
    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if kind in ("count", "seed") else float(text)
            if kind != "seed":
                _check(kind, kind, value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                _TYPE_ERRORS.get(kind, "must be a number >= 0")
            ) from None
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
        split_timed({"down_for": value})
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds > 0") from None
    return value


def add_fault_options(parser: argparse.ArgumentParser) -> None:
    """The fault options of ``mailings provider-sim`` (``--host``/``--port``/``--fd``: the CLI)."""
    parser.add_argument("--control-port", type=int, help="also serve /_sim/* here, even when down")
    parser.add_argument(
        "--control-fd",
        type=int,
        metavar="FD",
        help="as --control-port, on this inherited socket, bound already",
    )
    group = parser.add_argument_group(
        "faults",
        "Rates are probabilities per send request and add up to at most 1. All of these can"
        " change while it runs: POST /_sim/faults with a JSON object of the same names.",
    )
    for field in dataclasses.fields(Faults):
        kind: Kind = field.metadata["kind"]
        flag = "--" + field.name.replace("_", "-")
        text = field.metadata["help"]
        if field.default not in (0, None, False):
            text += f" (default {field.default:g})"
        if kind == "flag":
            group.add_argument(flag, action="store_true", help=text)
        elif kind == "token":
            group.add_argument(flag, metavar=_METAVAR[kind], help=text)
        else:
            group.add_argument(
                flag,
                type=_number(kind),
                default=field.default,
                metavar=_METAVAR.get(kind),
                help=text,
            )
    for name, text in TIMED.items():
        group.add_argument("--" + name.replace("_", "-"), type=_seconds, metavar="S", help=text)


def faults_from_args(args: argparse.Namespace) -> tuple[Faults, dict[str, float]]:
    """The faults and the timed windows given on the command line."""
    names = [field.name for field in dataclasses.fields(Faults)]
    faults = Faults().replace({name: getattr(args, name) for name in names if hasattr(args, name)})
    timed = {name: getattr(args, name) for name in TIMED if getattr(args, name, None)}
    return faults, timed
