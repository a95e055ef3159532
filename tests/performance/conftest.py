"""The seed's performance layout. ``load_tests/`` holds locustfiles (named test_*.py by the seed's layout), which
Locust runs and pytest must not import (importing Locust monkey-patches the test process with gevent); the
profiling tools are scripts with their own tests in tests/harness/profiling/ and tests/harness/suites/."""

collect_ignore = ["load_tests", "profiling"]
