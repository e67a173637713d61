"""Options shared by the product commands (storage, MLflow, Ray)."""

from __future__ import annotations

import argparse
from typing import Any

from protran_tune.runtime import DEFAULT_MLFLOW_URI, DEFAULT_STORAGE


def add_storage_options(parser: argparse.ArgumentParser, mlflow: bool = True) -> None:
    group = parser.add_argument_group("storage and tracking")
    group.add_argument("--storage", default=DEFAULT_STORAGE, help=f"Optuna storage URL (default {DEFAULT_STORAGE})")
    if mlflow:
        group.add_argument("--mlflow-uri", default=DEFAULT_MLFLOW_URI,
                           help=f"MLflow tracking URI: sqlite file or http(s) server (default {DEFAULT_MLFLOW_URI})")
        group.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
        group.add_argument("--experiment", default="protran-tune", help="MLflow experiment (default protran-tune)")


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray")
    group.add_argument("--ray-address", default=None,
                       help="Ray cluster to use (auto, host:port); default: RAY_ADDRESS, else a local Ray on "
                            "127.0.0.1 started and stopped by this command")
    group.add_argument("--no-ray", action="store_true", help="measure in this process, without Ray")
    group.add_argument("--workers", type=positive_int, default=None,
                       help="measurements in flight (default: the cluster's platform:<name> resource units)")


def parse_options(items: list[str] | None, flag: str = "--platform-option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs (values parsed as JSON when possible) into a dict; ``UsageError`` names ``flag``."""
    import json

    from protran_tune.errors import UsageError

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} must be KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, fractions), for argparse ``type=``."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def batch_size(text: str) -> int | None:
    return None if text == "auto" else positive_int(text)
