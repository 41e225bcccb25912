"""The checker: safety and liveness rules over a run's logs, and the run's figures.

:func:`check` is a pure function of :class:`~.logs.Logs` and :class:`Bounds`; it returns
one readable string per violation (an empty list means the run was correct):

* **exclusion**: a grant whose loop was neither blocked nor stopped (and none of whose
  writes stalled) has no write, accepted or refused, after another grant of the same key
  started. Grants that were disturbed are held to the fence rule alone;
* **fences**: per key, no two grants share a fence, undisturbed grants' fences rise in the
  order the grants started, and the resource never accepted a fence lower than one it had
  accepted before;
* **deadline**: every accepted write was checked (``ensure_held``) before the grant's
  local deadline, and, unless the grant was disturbed, took effect before it too;
* **liveness**: every worker got at least one grant, and after each SIGKILL of a holder
  another worker got that key within ``ttl + max_clock_skew + poll_interval + slack``;
* **data**: what each holder read is what the previous holder wrote on release (either
  value when a release's outcome is unknown).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .logs import Grant, Logs
from .resource import Write

__all__ = ["Bounds", "check", "disturbed_grants", "figures", "release_misreports"]


@dataclass(frozen=True)
class Bounds:
    """The run's lease settings, and the checker's tolerances."""

    ttl: float
    max_clock_skew: float
    poll_interval: float
    #: Extra time allowed for a failover (request latency, backoff, scheduling).
    slack: float = 1.0
    #: A write that took effect this long after its ``ensure_held`` stalled (e.g. on the
    #: resource's lock held by a stopped process): its grant counts as disturbed.
    stall: float = 0.1

    @property
    def failover(self) -> float:
        """The longest a key may stay unavailable after its holder is killed."""
        return self.ttl + self.max_clock_skew + self.poll_interval + self.slack


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _grant_spans(logs: Logs) -> dict[str, tuple[float, float]]:
    """Each grant's span, from its start to its end (or forever if it never ended)."""
    ends = {end.grant: end.end for end in logs.ends}
    return {g.id: (g.start, ends.get(g.id, math.inf)) for g in logs.grants}


def disturbed_grants(logs: Logs, bounds: Bounds) -> dict[str, str]:
    """Map each disturbed grant to why: its loop paused, or one of its writes stalled."""
    spans = _grant_spans(logs)
    why: dict[str, str] = {}
    for grant in logs.grants:
        start, end = spans[grant.id]
        for pause in logs.pauses:
            if pause.loop == grant.loop and pause.start < end and pause.end > start:
                why[grant.id] = pause.kind
                break
    for write in logs.writes:
        if write.t_write - write.t_check > bounds.stall and write.grant not in why:
            why[write.grant] = "stall"
    return why


def _by_key(grants: list[Grant]) -> dict[str, list[Grant]]:
    keyed: dict[str, list[Grant]] = defaultdict(list)
    for grant in grants:
        keyed[grant.key].append(grant)
    return keyed


def _check_exclusion(
    logs: Logs, disturbed: dict[str, str], writes_of: dict[str, list[Write]]
) -> list[str]:
    found: list[str] = []
    for key, grants in _by_key(logs.grants).items():
        ordered = sorted(grants, key=lambda g: g.start)
        latest: tuple[float, Grant] | None = None  # the undisturbed section ending last
        for grant in ordered:
            if latest is not None and latest[0] > grant.start:
                before = latest[1]
                found.append(
                    f"exclusion: {key}: {before.worker} (fence {before.fence}) wrote at "
                    f"{latest[0]:.3f}, after {grant.worker} (fence {grant.fence}) was granted "
                    f"the key at {grant.start:.3f}"
                )
            if grant.id not in disturbed:
                section_end = max([grant.start, *(w.t_write for w in writes_of[grant.id])])
                if latest is None or section_end > latest[0]:
                    latest = (section_end, grant)
    return found


def _check_fences(logs: Logs, disturbed: dict[str, str]) -> list[str]:
    found: list[str] = []
    for key, grants in _by_key(logs.grants).items():
        seen: dict[int, Grant] = {}
        for grant in grants:
            other = seen.get(grant.fence)
            if other is not None and other.id != grant.id:
                found.append(
                    f"fences: {key}: fence {grant.fence} granted to both {other.worker} "
                    f"and {grant.worker}"
                )
            seen[grant.fence] = grant
        calm = sorted((g for g in grants if g.id not in disturbed), key=lambda g: g.start)
        for before, after in itertools.pairwise(calm):
            if after.fence <= before.fence:
                found.append(
                    f"fences: {key}: {after.worker} got fence {after.fence} at "
                    f"{after.start:.3f}, not above {before.worker}'s {before.fence} granted "
                    f"at {before.start:.3f}"
                )
    highest: dict[str, Write] = {}
    for write in logs.writes:
        if not write.accepted:
            continue
        top = highest.get(write.key)
        if top is not None and write.fence < top.fence:
            found.append(
                f"fences: {write.key}: the resource accepted fence {write.fence} from "
                f"{write.worker} at {write.t_write:.3f} after fence {top.fence} from "
                f"{top.worker}"
            )
        if top is None or write.fence > top.fence:
            highest[write.key] = write
    return found


def _check_deadlines(logs: Logs, disturbed: dict[str, str]) -> list[str]:
    found: list[str] = []
    for write in logs.writes:
        if not write.accepted:
            continue
        if write.t_check >= write.deadline:
            found.append(
                f"deadline: {write.key}: {write.worker} (fence {write.fence}) passed "
                f"ensure_held at {write.t_check:.3f}, at or after its deadline "
                f"{write.deadline:.3f}"
            )
        elif write.t_write >= write.deadline and write.grant not in disturbed:
            found.append(
                f"deadline: {write.key}: {write.worker} (fence {write.fence}) wrote at "
                f"{write.t_write:.3f}, after its local deadline {write.deadline:.3f}"
            )
    return found


def _failovers(logs: Logs) -> list[tuple[str, float | None]]:
    """For each kill: the key, and how long until the next grant of it (None: never)."""
    keyed = _by_key(logs.grants)
    result: list[tuple[str, float | None]] = []
    for kill in logs.kills:
        later = [g for g in keyed.get(kill.key, []) if g.fence > kill.fence]
        if not later:
            result.append((kill.key, None))
            continue
        following = min(later, key=lambda g: g.fence)
        result.append((kill.key, max(0.0, following.start - kill.at)))
    return result


def _check_liveness(logs: Logs, bounds: Bounds) -> list[str]:
    found: list[str] = []
    granted = {g.worker for g in logs.grants}
    found.extend(
        f"liveness: worker {worker} never acquired a key"
        for worker in logs.workers
        if worker not in granted
    )
    for key, waited in _failovers(logs):
        if waited is None:
            found.append(f"liveness: nobody acquired {key} after its holder was killed")
        elif waited > bounds.failover:
            found.append(
                f"liveness: {key} was taken {waited:.3f} s after its holder was killed; "
                f"the bound is {bounds.failover:.3f} s"
            )
    return found


def _check_data(logs: Logs) -> list[str]:
    found: list[str] = []
    ends = {end.grant: end.outcome for end in logs.ends}
    releasing = {r.grant: _canonical(r.data) for r in logs.releasing}
    for key, grants in _by_key(logs.grants).items():
        expected = {_canonical(None)}
        for grant in sorted(grants, key=lambda g: g.fence):
            read = _canonical(grant.read)
            if read not in expected:
                found.append(
                    f"data: {key}: {grant.worker} (fence {grant.fence}) read {read}, "
                    f"expected {' or '.join(sorted(expected))}"
                )
            outcome = ends.get(grant.id)
            written = releasing.get(grant.id)
            if written is not None and outcome == "released":
                expected = {written}
            elif written is not None and (
                outcome in (None, "release_failed", "not_ours") or outcome.startswith("lost:")
            ):
                # The release may or may not have applied. ``not_ours`` is here too: a
                # release whose first answer was lost can apply and still return False
                # (see release_misreports). So is a loss reported after the release began:
                # the block's deadline can pass while the shielded release completes, and
                # the caller then hears the cancellation, not the release's result.
                expected = {read, written}
            else:
                expected = {read}
    return found


def release_misreports(logs: Logs) -> list[str]:
    """Grants whose ``release`` returned False although the next holder read its data."""
    ends = {end.grant: end.outcome for end in logs.ends}
    releasing = {r.grant: _canonical(r.data) for r in logs.releasing}
    found: list[str] = []
    for key, grants in _by_key(logs.grants).items():
        ordered = sorted(grants, key=lambda g: g.fence)
        for grant, following in itertools.pairwise(ordered):
            written = releasing.get(grant.id)
            if ends.get(grant.id) == "not_ours" and written == _canonical(following.read):
                found.append(
                    f"release: {key}: {grant.worker} (fence {grant.fence}) was told its release "
                    f"did not apply, but {following.worker} read the data it wrote"
                )
    return found


def check(logs: Logs, bounds: Bounds) -> list[str]:
    """Return every violation of the rules in this module's docstring."""
    disturbed = disturbed_grants(logs, bounds)
    writes_of: dict[str, list[Write]] = defaultdict(list)
    for write in logs.writes:
        writes_of[write.grant].append(write)
    return [
        *_check_exclusion(logs, disturbed, writes_of),
        *_check_fences(logs, disturbed),
        *_check_deadlines(logs, disturbed),
        *_check_liveness(logs, bounds),
        *_check_data(logs),
    ]


def _summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "count": len(ordered),
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "p99": round(p99, 3),
        "max": round(ordered[-1], 3),
    }


def _cancellation_lags(logs: Logs) -> dict[str, list[float]]:
    """Per loss reason: from when the holder could know (deadline, or end of a pause) to stop."""
    loops = {g.id: g.loop for g in logs.grants}
    lags: dict[str, list[float]] = defaultdict(list)
    for end in logs.ends:
        if not end.outcome.startswith("lost:") or end.stopped_at is None:
            continue
        known = end.deadline if end.deadline is not None else end.stopped_at
        for pause in logs.pauses:
            if pause.loop == loops.get(end.grant) and pause.start <= end.stopped_at:
                known = max(known, pause.end)
        lags[end.outcome.removeprefix("lost:")].append(max(0.0, end.stopped_at - known))
    return lags


def figures(logs: Logs, bounds: Bounds, violations: list[str]) -> dict[str, Any]:
    """Return the figures of a run, for ``docs/reliability.md``."""
    disturbed = disturbed_grants(logs, bounds)
    faults: dict[str, int] = defaultdict(int)
    requests = 0
    for stats in logs.stats.values():
        requests += stats.requests
        for name, count in stats.faults.items():
            faults[name] += count
    pauses: dict[str, int] = defaultdict(int)
    for pause in logs.pauses:
        pauses[pause.kind] += 1
    outcomes: dict[str, int] = defaultdict(int)
    for end in logs.ends:
        outcomes[end.outcome] += 1
    waits = [w for _, w in _failovers(logs) if w is not None]
    lags = _cancellation_lags(logs)
    return {
        "settings": {
            "ttl": bounds.ttl,
            "max_clock_skew": bounds.max_clock_skew,
            "poll_interval": bounds.poll_interval,
            "failover_bound": round(bounds.failover, 3),
            **logs.meta,
        },
        "workers": len(logs.workers),
        "keys": len({g.key for g in logs.grants}),
        "grants": len(logs.grants),
        "grant_outcomes": dict(sorted(outcomes.items())),
        "writes_accepted": sum(1 for w in logs.writes if w.accepted),
        "writes_refused": sum(1 for w in logs.writes if not w.accepted),
        "requests": requests,
        "faults_injected": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "pauses": dict(sorted(pauses.items())),
        "kills": len(logs.kills),
        "disturbed_grants": len(disturbed),
        "stalled_grants": sum(1 for why in disturbed.values() if why == "stall"),
        "violations": len(violations),
        "release_misreports": len(release_misreports(logs)),
        "failover_after_kill_s": _summary(waits),
        "loss_to_stop_s": {reason: _summary(v) for reason, v in sorted(lags.items())},
        "acquire_requests_per_grant": {
            **_summary([float(g.requests) for g in logs.grants]),
            "mean": round(statistics.fmean(g.requests for g in logs.grants), 3)
            if logs.grants
            else 0,
        },
    }
