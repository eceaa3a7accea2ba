"""The last thing a GPU window prints: what each stage did, and the headline ratios.

``python perf/window_summary.py WORK`` reads what ``perf/gpu_window.sh`` left in WORK
(stages.tsv, the junit XML of the GPU tests, the smoke and memcheck logs, the benchmark JSON, the
resource table) and prints a short plain-text summary. It never fails on a missing or
half-written file: a stage that did not finish is reported as such.
"""
from __future__ import annotations

import csv
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ANCHORS = ("torchvision", "monai", "cudnn+add", "cudnn", "torch", "eager")
"""Baseline names in order of preference for the one headline ratio of a case."""


def stage_lines(work: Path) -> list[str]:
    path = work / "stages.tsv"
    if not path.is_file():
        return ["no stage finished"]
    rows = list(csv.DictReader(path.open(), delimiter="\t"))
    return [f"{r['stage']:<12} {r['status']:<10} {r['seconds']:>4} s of {r['budget']}" for r in rows]


def test_lines(work: Path) -> list[str]:
    path = work / "gpu-tests.xml"
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return ["gpu tests: no junit XML (stage did not finish)"]
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    lines = [f"gpu tests: {counts['tests']} collected, {counts['failures']} failed, "
             f"{counts['errors']} errors, {counts['skipped']} skipped"]
    for case in suite.iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = (node.get("message") or "").splitlines()[0][:160] if node.get("message") else ""
                lines.append(f"  {kind.upper()} {case.get('classname')}::{case.get('name')}: {message}")
    return lines


def smoke_lines(work: Path) -> list[str]:
    """Every kernel variant against the CPU path (8 shards), and the same run under memcheck."""
    lines = []
    smoke = work / "smoke.log"
    if smoke.is_file():
        text = smoke.read_text(errors="replace")
        counts = [tuple(map(int, m)) for m in re.findall(r"^smoke: (\d+) calls.*?, (\d+) failed", text, flags=re.M)]
        lines.append(f"smoke: {sum(c for c, _ in counts)} calls in {len(counts)} shards, "
                     f"{sum(f for _, f in counts)} failed")
        lines += [f"  {line}" for line in re.findall(r"^FAILED .*$", text, flags=re.M)[:15]]
    memcheck = work / "memcheck.log"
    if memcheck.is_file():
        text = memcheck.read_text(errors="replace")
        found = re.findall(r"ERROR SUMMARY: (\d+) error", text)
        lines.append("memcheck: " + (f"{found[-1]} sanitizer errors" if found else "no sanitizer summary "
                                     "(refused the device or did not finish: see memcheck.log)"))
        lines += [f"  {line}" for line in re.findall(r"^smoke: .*$", text, flags=re.M)[-1:]]
    return lines or ["smoke / memcheck: not run"]


def _headline(row: dict) -> str:
    ours = (row.get("ours") or {}).get("ms")
    if not ours:
        return "ours: no time"
    parts = [f"ours {ours:.4g} ms"]
    for name in ANCHORS:
        ratio = row.get("speedup", {}).get(name)
        if ratio:
            parts.append(f"{ratio:.2f}x vs {name}")
            break
    compiled = row.get("speedup", {}).get("compile")
    if compiled:
        parts.append(f"{compiled:.2f}x vs compile")
    if row.get("gbps_fraction"):
        parts.append(f"{100 * row['gbps_fraction']:.0f}% of copy bandwidth")
    if row.get("tflops_fraction"):
        parts.append(f"{100 * row['tflops_fraction']:.0f}% of matmul")
    return ", ".join(parts)


def bench_lines(work: Path) -> list[str]:
    lines = []
    for path in sorted(work.glob("results/*/window*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            lines.append(f"{path.name}: unreadable")
            continue
        lines.append(f"{path.name}: {len(report['results'])} cases timed "
                     f"(copy {report['roofline']['copy_gbps']:.0f} GB/s)")
        for row in report["results"]:
            lines.append(f"  {row['family']}:{row['name']} {row['shape']} {row['dtype']}: {_headline(row)}")
        untimed = [e for e in report["errors"] if e["stage"] == "budget"]
        if untimed:
            lines.append(f"  not timed (family budget spent): " + "; ".join(e["case"] for e in untimed))
        for error in [e for e in report["errors"] if e["stage"] != "budget"][:12]:
            lines.append(f"  ERROR {error['family']}:{error['case']} [{error['stage']}] {error['error'][:140]}")
    return lines or ["bench: no results"]


def sweep_lines(work: Path) -> list[str]:
    try:
        rows = json.loads((work / "sweep" / "sweep.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return ["sweep: not run"]
    return [f"{r['target']:<36} {r['variant']:<28} " + (f"{r['ms']:.4f} ms" if "ms" in r else r.get("error", ""))
            for r in rows]


def resource_lines(work: Path) -> list[str]:
    path = work / "resources" / "resources.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return ["resources: not written"]
    rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
    spilling = [r for r in rows if r.get("spill_stores")]
    lines = [f"resources: {len(rows)} kernel configurations, {len(spilling)} with spill stores"]
    lines += [f"  SPILL {r.get('kernel')} {r.get('dtype', '')}: {r['spill_stores']} B stores" for r in spilling[:10]]
    return lines


def main(work: str) -> None:
    folder = Path(work)
    sections = [("stages", stage_lines), ("tests", test_lines), ("smoke and memcheck", smoke_lines),
                ("benchmark", bench_lines), ("sweep", sweep_lines),
                ("resources", resource_lines)]
    for title, make in sections:
        print(f"# {title}")
        try:
            print("\n".join(make(folder)))
        except Exception as error:  # a summary must always come out
            print(f"(could not summarise: {type(error).__name__}: {error})")


if __name__ == "__main__":
    main(sys.argv[1])
