"""Repository-wide pytest configuration.

nbval compares every notebook's stored outputs with a fresh run. stderr carries warnings and
progress bars that differ between machines, so it is left out of the comparison; stdout and
every cell result are still compared.
"""


def pytest_collectstart(collector):
    if str(getattr(collector, "fspath", "")).endswith(".ipynb") and hasattr(collector, "skip_compare"):
        collector.skip_compare += ("stderr",)
