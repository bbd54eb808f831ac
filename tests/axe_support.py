"""axe-core in a Playwright page: the WCAG 2.0, 2.1 and 2.2 A and AA rules, and axe's best
practices, no violation.

axe-core is a test-only dependency from the npm registry (``package.json``, pinned by
``package-lock.json``), installed into ``node_modules/`` by ``bin/test`` (``npm ci``) and
never served to buyers. Without it the checks skip, saying why, except with
``STOREFRONT_REQUIRE_BROWSER=1`` (CI), where they fail.

The shop's pages have a strict Content-Security-Policy (no inline script; the hosted sandbox
page has ``script-src 'none'``), so axe is not added as a ``<script>`` tag: its source is
evaluated through the DevTools protocol (``page.evaluate``), which the page's CSP does not
govern, and so trips no CSP violation the other checks would see.
"""

from __future__ import annotations

import json
from pathlib import Path

from .browser_support import ROOT, _unavailable

AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
# With axe's best practices too: a skipped heading level, a page without an h1 or content
# outside any landmark are not WCAG failures by themselves, but they are what a screen
# reader user stumbles on, and the shop had all three.
TAGS = WCAG_TAGS + ["best-practice"]

_source: str | None = None


def axe_source() -> str:
    global _source
    if _source is None:
        if not Path(AXE_JS).is_file():
            _unavailable(
                f"{AXE_JS} not found: run `npm ci` (bin/test does) to install axe-core for the accessibility checks"
            )
        _source = AXE_JS.read_text(encoding="utf-8")
    return _source


def axe_violations(page) -> list[dict]:
    """axe's violations of the WCAG A/AA rules on the page as it is now."""
    source = axe_source()
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source)
    return page.evaluate(
        """async (tags) => {
            const results = await window.axe.run(document, {
                runOnly: {type: 'tag', values: tags},
                resultTypes: ['violations'],
            });
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map((n) => ({target: n.target, summary: n.failureSummary})),
            }));
        }""",
        TAGS,
    )


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            summary = " ".join((node["summary"] or "").split())
            lines.append(f"    {json.dumps(node['target'])}: {summary}")
    return "\n".join(lines)


def assert_accessible(page, what: str = "") -> None:
    """axe finds no WCAG 2.0/2.1/2.2 A or AA violation (nor best-practice one) on the page; else says which
    rules, how serious, on which elements, and how to fix them."""
    violations = axe_violations(page)
    where = what or page.url
    assert not violations, f"axe-core found {len(violations)} violation(s) on {where}:\n{describe(violations)}"
