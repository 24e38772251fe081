"""Fault scenarios on the real stack (issue 12): each injects one fault into a marketer's traffic and returns
a ``devkit.fault_report.FaultReport`` read from the tables and the bucket. ``rig`` runs the API and the
workers, ``ledger`` checks what was accepted against what exists, ``scenarios`` holds one function per fault;
tests/reliability/ asserts on them and ``python -m bench.faults`` prints their table (docs/reliability.md).
"""
