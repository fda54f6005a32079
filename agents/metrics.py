"""Agent counters rendered as Prometheus/OpenMetrics text for ``GET /metrics``.

Plain dicts on one event loop: incrementing is a dict update, cheaper than a metrics library, and the
names stay those an operator greps for (received/accepted/rejected per transport, errors by code,
queue depth, write latency).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class AgentMetrics:
    """Counters of the southbound pipeline; ``queue_depth`` is read when rendering."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.commands: Counter[tuple[str, str]] = Counter()
        self.registrations: Counter[tuple[str, str]] = Counter()
        self.writes = 0
        self.latency_buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.queue_depth: Callable[[], int] = lambda: 0

    def reject(self, transport: str, code: str, measures: int = 1) -> None:
        self.rejected[transport] += measures
        self.errors[code] += 1

    def observe_write(self, seconds: float) -> None:
        self.writes += 1
        self.latency_sum += seconds
        self.latency_count += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[i] += 1
                break

    def render(self) -> str:
        out: list[str] = []

        def counter(name: str, help_: str, label: str, values: Counter[str]) -> None:
            out.append(f"# TYPE {name} counter")
            out.append(f"# HELP {name} {help_}")
            for key in sorted(values):
                out.append(f'{name}_total{{{label}="{_esc(key)}"}} {values[key]}')

        counter("iota_measures_received", "Measure groups received.", "transport", self.received)
        counter("iota_measures_accepted", "Measure groups written to the context broker.", "transport",
                self.accepted)
        counter("iota_measures_rejected", "Measure groups refused (bad payload, unknown device, ...).",
                "transport", self.rejected)
        counter("iota_errors", "Errors by iotagent-node-lib error code.", "code", self.errors)
        out.append("# TYPE iota_commands counter")
        out.append("# HELP iota_commands Commands by transport and final status.")
        for (transport, status) in sorted(self.commands):
            out.append(f'iota_commands_total{{transport="{transport}",status="{status}"}} '
                       f"{self.commands[(transport, status)]}")
        out.append("# TYPE iota_registrations counter")
        out.append("# HELP iota_registrations csourceRegistrations sent to the remote broker, by operation and outcome.")
        for (operation, outcome) in sorted(self.registrations):
            out.append(f'iota_registrations_total{{operation="{operation}",outcome="{outcome}"}} '
                       f"{self.registrations[(operation, outcome)]}")
        out.append("# TYPE iota_queue_depth gauge")
        out.append("# HELP iota_queue_depth Measure batches waiting to be written.")
        out.append(f"iota_queue_depth {self.queue_depth()}")
        out.append("# TYPE iota_write_latency_seconds histogram")
        out.append("# HELP iota_write_latency_seconds Duration of one grouped write to the context broker.")
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
            cumulative += n
            out.append(f'iota_write_latency_seconds_bucket{{le="{bound}"}} {cumulative}')
        out.append(f'iota_write_latency_seconds_bucket{{le="+Inf"}} {self.latency_count}')
        out.append(f"iota_write_latency_seconds_sum {self.latency_sum:.6f}")
        out.append(f"iota_write_latency_seconds_count {self.latency_count}")
        out.append("# EOF")
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
