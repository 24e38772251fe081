"""The audit wrapper tells a clean audit, a vulnerable lock and an audit that could not run apart."""

from __future__ import annotations

from devkit.dependency_audit import AuditReport, parse_report, summarize


def test_vulnerabilities_fail_with_package_id_and_fix() -> None:
    report = parse_report({"dependencies": [
        {"name": "requests", "version": "2.31.0", "vulns": [
            {"id": "GHSA-9wx4-h78v-vm56", "fix_versions": ["2.32.0"], "aliases": ["CVE-2024-35195"]}]},
        {"name": "idna", "version": "3.10", "vulns": []},
    ]})  # fmt: skip
    text, status = summarize(report, "pypi")
    assert status == 1
    assert "requests==2.31.0: GHSA-9wx4-h78v-vm56 (fixed in: 2.32.0)" in text


def test_packages_the_service_could_not_answer_for_are_an_incomplete_audit_not_a_pass() -> None:
    reason = "Dependency not found on PyPI and could not be audited"
    report = parse_report({"dependencies": [
        {"name": "a2wsgi", "skip_reason": f"{reason}: a2wsgi (1.10.10)"},
        {"name": "idna", "version": "3.10", "vulns": []},
    ]})  # fmt: skip
    text, status = summarize(report, "pypi")
    assert status == 2 and "1 of 2 packages not audited" in text and f"1 x {reason}" in text


def test_an_unreachable_service_and_a_clean_audit() -> None:
    text, status = summarize(
        AuditReport(error="pip-audit exited 1 without a report: NameResolutionError"), "osv"
    )
    assert status == 2 and "NameResolutionError" in text and "'osv'" in text
    text, status = summarize(
        parse_report({"dependencies": [{"name": "idna", "version": "3.10", "vulns": []}]}), "pypi"
    )
    assert (status, text) == (0, "dependency audit: 1 packages, no known vulnerabilities (pypi)")
