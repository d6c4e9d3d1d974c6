"""unifyparams' benchmarks: ``python -m benchmarks`` (or ``bash .ci/bench``) runs them all and writes
a Markdown and a JSON report with a throughput plot; each ``bench_*.py`` still runs on its own.
``python -m benchmarks.readme REPORT.json`` writes the report's table into README.md and docs/."""
