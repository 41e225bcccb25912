"""Run the safety workload from the command line: ``python tests/safety/run.py [--long]``.

Puts ``tests/`` on ``sys.path`` (as pytest does) and calls :func:`safety.workload.main`.
Needs AWS DynamoDB Local (Java and the npm package installed by ``scripts/test``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safety.workload import main

if __name__ == "__main__":
    sys.exit(main())
