"""The pieces of ``analyses/benchmark_solvers.py``: :mod:`solvers.harness` (settings, problems with their dense
truth, exact counted products, timing, tables) and one module per task: :mod:`solvers.eigs` ([1] and [2]),
:mod:`solvers.trace` ([3]), :mod:`solvers.density` ([4]), :mod:`solvers.products` ([5]) and
:mod:`solvers.first_default_call` ([0]). Imported as ``solvers`` with ``analyses/`` on ``sys.path``, as the
scripts import their shared modules."""
