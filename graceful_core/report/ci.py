"""Release gates for CI: their verdicts as plain lines, GitHub Actions annotations and JUnit XML.

A :class:`Gate` is one threshold the user set on the command line (``--max-nfr``,
``--min-btc``, ``--max-slice-nfr``, ``--max-churn``) with its verdict and a one-line
detail written with the vocabulary's formats. :func:`github_annotations` turns the failed
ones into GitHub Actions workflow commands (``::error title=…::message``; one per failed
gate and one per significant slice over its gate), :func:`junit_xml` into a JUnit report
(one ``<testcase>`` per gate, ``<failure>`` when it failed) that CI systems display.

Examples
--------
>>> g = Gate("max-nfr", False, "negative flip rate 2.00 % > 1.00 %")
>>> g.line()
'gate max-nfr: FAILED (negative flip rate 2.00 % > 1.00 %)'
>>> github_annotations([g])
['::error title=graceful gate max-nfr::negative flip rate 2.00 %25 > 1.00 %25']
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Gate", "github_annotations", "github_escape", "junit_xml"]


@dataclass(frozen=True)
class Gate:
    """One gate: its name (the flag without dashes), whether it passed, and why.

    ``items`` are the individual offenders of a gate that tests many things at once (the
    significant slices over ``--max-slice-nfr``), one annotation each.
    """

    name: str
    passed: bool
    detail: str
    items: tuple[str, ...] = field(default=())

    def line(self) -> str:
        """``gate NAME: passed (detail)`` or ``gate NAME: FAILED (detail)``."""
        return f"gate {self.name}: {'passed' if self.passed else 'FAILED'} ({self.detail})"

    def to_json(self) -> dict:
        return {"gate": self.name, "passed": self.passed, "detail": self.detail}


def github_escape(text: str, prop: bool = False) -> str:
    """Escape ``text`` for a GitHub Actions workflow command (data, or a property value when ``prop``).

    GitHub's runner decodes ``%25``, ``%0D``, ``%0A`` (and ``%3A``, ``%2C`` in properties).

    >>> github_escape("50% off\\nnow"), github_escape("a:b,c", prop=True)
    ('50%25 off%0Anow', 'a%3Ab%2Cc')
    """
    out = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        out = out.replace(":", "%3A").replace(",", "%2C")
    return out


def github_annotations(gates: Sequence[Gate], warnings: Sequence[str] = ()) -> list[str]:
    """``::error`` lines for failed gates (one per offending item too), ``::warning`` lines for ``warnings``."""
    lines = [f"::warning title={github_escape('graceful', prop=True)}::{github_escape(w)}" for w in warnings]
    for g in gates:
        if g.passed:
            continue
        title = github_escape(f"graceful gate {g.name}", prop=True)
        lines.append(f"::error title={title}::{github_escape(g.detail)}")
        lines.extend(f"::error title={title}::{github_escape(item)}" for item in g.items)
    return lines


def junit_xml(gates: Sequence[Gate], suite: str = "graceful compare", properties: dict[str, str] | None = None) -> str:
    """A JUnit XML report: one ``<testsuite>``, one ``<testcase>`` per gate, ``<failure>`` for failed ones.

    >>> print(junit_xml([Gate("max-churn", True, "ok")]).splitlines()[1])
    <testsuites name="graceful" tests="1" failures="0" errors="0">
    """
    n_fail = sum(not g.passed for g in gates)
    root = ET.Element("testsuites", name="graceful", tests=str(len(gates)), failures=str(n_fail), errors="0")
    ts = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(gates)), failures=str(n_fail), errors="0", skipped="0"
    )
    if properties:
        props = ET.SubElement(ts, "properties")
        for k, v in properties.items():
            ET.SubElement(props, "property", name=k, value=str(v))
    for g in gates:
        tc = ET.SubElement(ts, "testcase", classname="graceful.gates", name=g.name)
        if g.passed:
            ET.SubElement(tc, "system-out").text = g.detail
        else:
            fail = ET.SubElement(tc, "failure", message=g.detail, type="GateFailed")
            fail.text = "\n".join((g.detail, *g.items))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
