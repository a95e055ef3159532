"""The seed's entry point to ``locustfiles/cpu_intensive.py``, CPU intensive: the TMDB pipeline on posted movies.

    locust -f tests/performance/load_tests/test_cpu_intensive.py --headless -u 20 -r 5 -t 60s
    locust -f tests/performance/load_tests/ --headless -u 40 -r 10 -t 60s     # the four scenarios together

The user class is the scenario's own (imported, not copied): a change to the scenario reaches this entry point.
Named test_*.py by seed 000's layout; pytest does not collect it (tests/performance/conftest.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, where locustfiles/ lives

from locustfiles.cpu_intensive import FeatureEngineeringUser

__all__ = ["FeatureEngineeringUser"]
