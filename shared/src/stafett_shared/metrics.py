"""Metrics: what an operator watches, in the Prometheus text format at ``GET /metrics``.

OpenTelemetry instruments, read by the OpenTelemetry Prometheus exporter. Every value is a
count, a stream position or a duration; every attribute is the name of a projection, a
reason code or a service. No id of a case, child or person and no content is ever an
attribute, so a metric cannot carry personal data (``test_metrics`` checks the labels).

* ``stafett_projector_position`` – the last stream sequence a read model applied;
* ``stafett_projector_lag`` – stream messages it has not applied yet, as last observed;
* ``stafett_projector_behind_seconds`` – for how long it has been behind the stream's end
  (0 when caught up, +Inf when its loop has died). For the consent service this is the
  consent lag: decisions answer 503 once it passes ``STAFETT_CONSENT_DECISION_MAX_LAG_S``;
* ``stafett_projector_quarantined_total`` – messages a read model refused and skipped
  (``stafett_shared.projector``), by projection and reason;
* ``stafett_checkpoint_age_seconds`` and ``stafett_checkpoint_tree_size`` – the log
  service's newest signed checkpoint;
* ``stafett_consent_decisions_unavailable_total`` – decisions the consent service refused
  because its read model lagged too long (``stafett_consent.decisions``).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

if TYPE_CHECKING:
    from stafett_shared.projector import Projector

__all__ = [
    "CONTENT_TYPE",
    "configure_metrics",
    "exposition",
    "unwatch",
    "watch_checkpoints",
    "watch_projector",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_meter = metrics.get_meter("stafett")
_projectors: weakref.WeakSet[Projector] = weakref.WeakSet()
_checkpoints: list[tuple[weakref.ref[object], Callable[[], tuple[float, int] | None]]] = []
_configured = False
_lock = threading.Lock()


def watch_projector(projector: Projector) -> None:
    """Report this read model's position, lag and time behind (while it exists)."""
    _projectors.add(projector)


def unwatch(owner: object) -> None:
    """Stop reporting a projector or checkpointer (its service stops)."""
    _projectors.discard(owner)  # type: ignore[arg-type]
    _checkpoints[:] = [(ref, newest) for ref, newest in _checkpoints if ref() is not owner]


def watch_checkpoints(owner: object, newest: Callable[[], tuple[float, int] | None]) -> None:
    """Report the newest checkpoint's age and tree size: ``newest`` answers its wall-clock
    time (seconds since the epoch) and tree size, or None before the first."""
    _checkpoints.append((weakref.ref(owner), newest))


def _per_projection(value: Callable[[Projector], float]) -> Callable[..., Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        for projector in list(_projectors):
            yield Observation(value(projector), {"stafett.projection": projector.name})

    return observe


def _newest() -> tuple[float, int] | None:
    found: tuple[float, int] | None = None
    for owner, newest in list(_checkpoints):
        if owner() is None:
            _checkpoints.remove((owner, newest))
            continue
        value = newest()
        if value is not None and (found is None or value[0] > found[0]):
            found = value
    return found


def _checkpoint_age(_options: CallbackOptions) -> Iterable[Observation]:
    newest = _newest()
    if newest is not None:
        yield Observation(max(time.time() - newest[0], 0.0))


def _checkpoint_size(_options: CallbackOptions) -> Iterable[Observation]:
    newest = _newest()
    if newest is not None:
        yield Observation(newest[1])


_meter.create_observable_gauge(
    "stafett.projector.position",
    [_per_projection(lambda p: p.known_position)],
    unit="{message}",
    description="The last stream sequence the read model applied",
)
_meter.create_observable_gauge(
    "stafett.projector.lag",
    [_per_projection(lambda p: p.lag)],
    unit="{message}",
    description="Stream messages the read model has not applied yet, as last observed",
)
_meter.create_observable_gauge(
    "stafett.projector.behind",
    [_per_projection(lambda p: p.behind_for())],
    unit="s",
    description="For how long the read model has been behind the stream's end",
)
_meter.create_observable_gauge(
    "stafett.checkpoint.age",
    [_checkpoint_age],
    unit="s",
    description="Time since the newest signed checkpoint",
)
_meter.create_observable_gauge(
    "stafett.checkpoint.tree_size",
    [_checkpoint_size],
    unit="{message}",
    description="Tree size of the newest signed checkpoint",
)


def configure_metrics() -> None:
    """Install the process's meter provider with the Prometheus reader, once."""
    global _configured  # noqa: PLW0603
    with _lock:
        if _configured:
            return
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider

        metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
        _configured = True


def exposition() -> bytes:
    """The process's metrics in the Prometheus text format."""
    from prometheus_client import REGISTRY, generate_latest

    configure_metrics()
    return generate_latest(REGISTRY)
