"""The pages' one stylesheet: served by the dashboard, written inline into a report file.

Kept as text in the package (no file to install beside it). The charts' colours are here
too, by class name (see :mod:`mailopsd.pages.svg`): the pages carry no style attribute,
which the dashboard's Content-Security-Policy would refuse.
"""

from __future__ import annotations

__all__ = ["STYLESHEET"]

STYLESHEET = """\
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6575; --line: #d7dce4;
  --step1: #2f6fb3; --followups: #8fb8e6; --rate: #b4461f; --threshold: #7a1d1d;
  --ok: #1f7a3f; --warn: #9a5b00; --bad: #a32020; }
body { font: 15px/1.45 system-ui, sans-serif; color: var(--ink); margin: 0; }
header { display: flex; justify-content: space-between; align-items: center;
  padding: 0.6rem 1.2rem; border-bottom: 1px solid var(--line); }
header form { margin: 0; }
main { padding: 1rem 1.2rem 3rem; max-width: 1100px; }
h1 { font-size: 1.35rem; margin: 0.4rem 0 0.8rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 0.4rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.3rem; }
table { border-collapse: collapse; margin: 0.4rem 0 1rem; }
th, td { text-align: left; padding: 0.25rem 0.7rem 0.25rem 0; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.state-enabled, .state-active { color: var(--ok); }
.state-disabled, .condition-error { color: var(--bad); font-weight: 600; }
.condition { color: var(--warn); }
ul.conditions { margin: 0.2rem 0; padding-left: 1.1rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre.reenable { background: #f4f6f9; border: 1px solid var(--line); padding: 0.5rem;
  white-space: pre-wrap; }
section.mailbox { border-top: 1px solid var(--line); margin-top: 1.2rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
svg.chart { width: 100%; height: auto; }
svg.chart .axis { stroke: var(--muted); stroke-width: 1; }
svg.chart .label { fill: var(--muted); font-size: 11px; }
svg.chart .step1 { fill: var(--step1); }
svg.chart .followups { fill: var(--followups); }
svg.chart .rate { fill: none; stroke: var(--rate); stroke-width: 1.5; }
svg.chart .point { fill: var(--rate); }
svg.chart .threshold { stroke: var(--threshold); stroke-width: 1; stroke-dasharray: 4 3; }
.legend span { margin-right: 1rem; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
.swatch.step1 { background: var(--step1); }
.swatch.followups { background: var(--followups); }
.swatch.rate { background: var(--rate); }
.swatch.threshold { background: var(--threshold); }
form.sign-in { max-width: 28rem; }
form.sign-in input[type=password] { width: 100%; font: inherit; padding: 0.3rem; }
.error { color: var(--bad); }
"""
