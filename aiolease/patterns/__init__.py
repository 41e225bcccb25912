"""Ready-made uses of leases: single-flight work, leader election, work claiming, singletons.

* :class:`SingleFlight` / :func:`single_flight`: one caller across the fleet does the work
  (for example regenerating a page), the others learn who holds it and when to retry
  (:class:`Regenerated` or :class:`Busy`); concurrent callers in one process can share an
  attempt.
* :class:`LeaderElection`: campaign for a key, lead while holding it, step down on loss or
  cancellation, campaign again, with Kubernetes-style hooks.
* :func:`claim_any` / :func:`claim_each`: competing consumers share a batch of keys.
* :func:`singleton`: a decorator running a coroutine function only where its lease is won.

They use only the public API of :class:`aiolease.LeaseManager`. See ``docs/patterns.md``.
"""

from ._claim import DONE, claim_any, claim_each, is_done
from ._election import LeaderElection
from ._single_flight import Busy, Regenerated, SingleFlight, single_flight
from ._singleton import singleton

__all__ = [
    "DONE",
    "Busy",
    "LeaderElection",
    "Regenerated",
    "SingleFlight",
    "claim_any",
    "claim_each",
    "is_done",
    "single_flight",
    "singleton",
]
