"""`make audit` (part of `make test`): pip-audit over requirements.lock, saying what it could check.

pip-audit asks a vulnerability service about every pinned package: PyPI's JSON API (``-s pypi``, the
default) or OSV (``-s osv``). Where the service cannot answer, pip-audit does not fail: a PyPI mirror
without the JSON API answers 404, pip-audit skips each package as "not found on PyPI" and still prints
"No known vulnerabilities found". A pass there would claim a check that never happened, so this wrapper
reads pip-audit's JSON report and says which case it is:

- vulnerabilities found: each listed (package, version, id, fixed versions), exit 1;
- every package audited, none vulnerable: exit 0;
- some or all packages not audited (service unreachable, packages unknown to it): the count and the
  reason pip-audit gave, exit 0 with ``DEPENDENCY AUDIT INCOMPLETE`` (``--strict``: exit 2), so
  `make test` on a network without the service degrades visibly instead of failing or passing silently.

Run: ``python -m devkit.dependency_audit [--service pypi|osv] [--strict] [--lock FILE]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP_AUDIT = Path(sys.executable).parent / "pip-audit"


@dataclass
class AuditReport:
    """What pip-audit found: vulnerabilities per package, and the packages it could not audit, why."""

    audited: list[str] = field(default_factory=list)
    vulnerable: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # pip-audit itself failed (e.g. the service's host does not resolve)


def run_pip_audit(lock: Path, service: str, timeout_s: float = 600) -> AuditReport:
    """Run pip-audit on the pinned lock file (no resolution, no pip) and read its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        command = [str(PIP_AUDIT), "-r", str(lock), "--no-deps", "--disable-pip", "-s", service,
                   "--progress-spinner", "off", "-f", "json", "-o", str(out)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if not out.exists():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return AuditReport(error=f"pip-audit exited {result.returncode} without a report: {last}")
        return parse_report(json.loads(out.read_text()))


def parse_report(report: dict) -> AuditReport:
    """pip-audit's JSON (``-f json``) as an AuditReport."""
    parsed = AuditReport()
    for dependency in report.get("dependencies", []):
        name = f"{dependency['name']}=={dependency.get('version', '?')}"
        if "skip_reason" in dependency:
            parsed.skipped[dependency["name"]] = dependency["skip_reason"]
            continue
        parsed.audited.append(name)
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            parsed.vulnerable.append(f"{name}: {vuln['id']} (fixed in: {fixed})")
    return parsed


def summarize(report: AuditReport, service: str) -> tuple[str, int]:
    """The lines to print and the status: 1 vulnerable, 2 incomplete, 0 clean."""
    if report.vulnerable:
        return "\n".join(["DEPENDENCY AUDIT FAILED: known vulnerabilities:", *report.vulnerable]), 1
    if report.error is not None:
        return f"DEPENDENCY AUDIT INCOMPLETE: vulnerability service {service!r}: {report.error}", 2
    if report.skipped:
        reasons = Counter(_reason_kind(reason) for reason in report.skipped.values())
        why = "; ".join(f"{count} x {kind}" for kind, count in reasons.most_common())
        lines = [
            f"DEPENDENCY AUDIT INCOMPLETE: {len(report.skipped)} of "
            f"{len(report.skipped) + len(report.audited)} packages not audited by {service!r} ({why}).",
            f"  e.g. {next(iter(report.skipped.values()))}",
            "  On this network the vulnerability service does not answer for them; run `python -m "
            "devkit.dependency_audit --strict` where it does (pypi.org's JSON API or api.osv.dev).",
        ]
        return "\n".join(lines), 2
    return f"dependency audit: {len(report.audited)} packages, no known vulnerabilities ({service})", 0


def _reason_kind(reason: str) -> str:
    """pip-audit's skip reason without the package's name and version, to count them by kind."""
    return reason.split(":", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--service", choices=("pypi", "osv"), default="pypi")
    parser.add_argument("--strict", action="store_true", help="an incomplete audit fails (exit 2)")
    args = parser.parse_args(argv)
    text, status = summarize(run_pip_audit(args.lock, args.service), args.service)
    print(text, file=sys.stderr if status else sys.stdout)
    return status if status != 2 or args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
