"""A randomized safety workload for aiolease, with a checker over its effects.

Several workers (tasks in one process and separate processes) take a few shared keys on
AWS DynamoDB Local and write to a fenced resource (:mod:`.resource`) while faults are
injected. Everything they do is logged (:mod:`.logs`); :func:`.checker.check` then looks
at those logs, not at what the library believes, and lists every violation.

* :mod:`.worker`: one worker's loop, run as a task or as a process (``python -m
  safety.worker``);
* :mod:`.workload`: the orchestration (processes, faults, signals), the negative controls
  and the command line (``python tests/safety/run.py``);
* :mod:`.checker`: the safety and liveness rules, and the figures of a run.

The package lives under ``tests/`` (which is not a package), so it imports as ``safety``:
pytest puts ``tests/`` on ``sys.path``, and ``run.py`` does the same.
"""
