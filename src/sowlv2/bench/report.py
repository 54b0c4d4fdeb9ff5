"""Targets, the JSON report and its markdown table."""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

from ..errors import SOWLv2Error
from .machine import _rss_mb, machine_info, versions
from .recorder import _r
from .settings import (
    IMAGE_OBJECTS,
)

log = logging.getLogger(__name__)


class ReportSection:
    """Targets and the report (methods of :class:`~sowlv2.bench.core.Bench`)."""

    def targets(self) -> list[dict]:
        c, s = self.comparisons, self.s
        applies = not s.quick and self.device.type == "cpu" and s.dtype == "float32"
        scope = None if applies else ("measured with tiny models: the targets are set for real-size models on "
                                      "the CPU" if s.quick else "the targets are set for the CPU in float32")
        out = []

        def add(name: str, key: str, limit: float, op: str, note: str | None = None) -> None:
            if key not in c:
                return
            value = c[key]["value"]
            ok = value >= limit if op == ">=" else value <= limit
            out.append({"name": name, "value": value, "limit": f"{op} {limit}", "pass": bool(ok),
                        "applies": applies if not key.startswith("rss") else True,
                        "note": note or (None if key.startswith("rss") else scope)})

        add("model forward passes share of a video run's wall time (detect every 10)",
            "forward_share_every_10", 0.85, ">=")
        add("V-JEPA 2 key frames at 25% / detector on every frame (wall)", "vjepa2_25_vs_every_frame", 0.7, "<=")
        add(f"image with {IMAGE_OBJECTS} objects / with 1 object (wall)", f"image_{IMAGE_OBJECTS}_vs_1_objects",
            1.3, "<=")
        if "rss_10n_vs_n_stream" in c:
            kind = self.runs["memory"]["models"]
            add("peak RSS, 10N / N frames (streaming)", "rss_10n_vs_n_stream", 1.2, "<=",
                f"{kind} models, in a process of their own")
        return out

    def report(self, seconds: float) -> dict:
        s = self.s
        for name, m in self.measures.items():
            if not m.get("n"):
                raise SOWLv2Error(f"bench: measure {name} has no samples")
        return {
            "schema": 1,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "sowlv2 bench " + " ".join(s.argv),
            "machine": machine_info(self.device),
            "versions": versions(),
            "settings": {"device": str(self.device), "dtype": s.dtype, "threads": s.threads, "frames": s.frames,
                         "size": f"{s.size[0]}x{s.size[1]}", "objects": s.objects, "quick": s.quick,
                         "repeats": s.repeats, "sections": list(s.only), "memory_frames": s.memory_frames,
                         "models": "tiny (random weights)" if s.quick else "real-size architectures, random weights"},
            "models": self.model_info,
            "load_average": self.load,
            "peak_rss_mb": _rss_mb(),
            "bench_seconds": round(seconds, 1),
            "section_seconds": self.section_seconds,
            "measures": self.measures,
            "comparisons": self.comparisons,
            "runs": self.runs,
            "targets": self.targets(),
            "errors": self.errors,
            "notes": self.notes + [
                "Random weights: speed and memory only, never quality. The detector's boxes are the synthetic "
                "world's ground truth (FixedBoxesDetector, after the real OWLv2 ran); association is forced "
                "to keep exactly the objects detected on the first key frame, without re-prompts.",
                "Timings are medians after a warm-up; cpu_median is the process CPU time (all threads).",
            ],
        }


def _ratio(a: dict, b: dict, what: str) -> dict:
    return {"value": _r(a["median"] / b["median"], 4), "what": what}


# ---------------------------------------------------------------------------------------------- memory child

def write_report(report: dict, folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    jpath, mpath = folder / f"{stem}.json", folder / f"{stem}.md"
    jpath.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    mpath.write_text(markdown(report), encoding="utf-8")
    return jpath, mpath


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    return f"{v:.1f} {unit}"


def markdown(report: dict) -> str:
    """The report as a markdown page: context, measures, comparisons, targets, runs."""
    m, st = report["machine"], report["settings"]
    lines = [f"# sowlv2 bench: {st['device']}, {st['dtype']}{', quick (tiny models)' if st['quick'] else ''}", "",
             f"- command: `{report['command']}`",
             f"- date: {report['date']}; bench took {report['bench_seconds']} s ("
             + ", ".join(f"{k} {v} s" for k, v in report["section_seconds"].items()) + ")",
             f"- machine: {m['cpu']}, {m['cpu_count']} cores ({m['torch_threads']} torch threads), "
             f"{m.get('ram_gb')} GB RAM" + (f"; {m['gpu']} ({m['gpu_memory_gb']} GB)" if "gpu" in m else ""),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             f"- input: synthetic world, {st['frames']} frames {st['size']}, {st['objects']} objects; "
             f"{st['models']}" + "".join(f"; {k} {v}" for k, v in sorted(
                 (k, ", ".join(f"{a}={b}" for a, b in d.items())) for k, d in report["models"].items())),
             "- load average (1, 5, 15 min): " + "; ".join(f"{k} {v}" for k, v in report["load_average"].items()),
             "", "## Measures (median after a warm-up)", "",
             "| measure | median | min - max | n | CPU time | what |", "|---|---|---|---|---|---|"]
    for name, x in report["measures"].items():
        u = x["unit"]
        cpu = _fmt(x["cpu_median"], u) if "cpu_median" in x else ""
        lines.append(f"| {name} | {_fmt(x['median'], u)} | {_fmt(x['min'], u)} - {_fmt(x['max'], u)} | {x['n']} "
                     f"| {cpu} | {x['what']} |")
    lines += ["", "## Comparisons", "", "| comparison | value | what |", "|---|---|---|"]
    for name, x in report["comparisons"].items():
        lines.append(f"| {name} | {x['value']:.3f} | {x['what']} |")
    if report["targets"]:
        lines += ["", "## Targets", "", "| target | value | limit | result |", "|---|---|---|---|"]
        for t in report["targets"]:
            verdict = "PASS" if t["pass"] else "FAIL"
            if not t["applies"]:
                verdict += " (not applicable)"
            note = f" ({t['note']})" if t.get("note") else ""
            lines.append(f"| {t['name']}{note} | {t['value']:.3f} | {t['limit']} | {verdict} |")
    video = report["runs"].get("video")
    if video:
        lines += ["", "## Video runs (results.json stats, seconds)", "",
                  "| run | wall | detector calls | decode | select | detect | track | write | "
                  "forward share | stats share | glue: pre/post detect, track |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in video["runs"].items():
            sec, g = r["seconds"], r["glue_s"]
            lines.append(f"| {name} | {r['wall_s']:.2f} | {r['detector_calls']} | {sec['decode']:.3f} | "
                         f"{sec['select']:.3f} | {sec['detect']:.3f} | {sec['track']:.3f} | "
                         f"{sec.get('write', 0):.3f} | {r['share_forward_of_wall']:.3f} | "
                         f"{r['share_stats']:.3f} | {g['detect_pre_post']:.3f}, {g['track_pre_post']:.3f} |")
    mem = report["runs"].get("memory")
    if mem:
        lines += ["", f"## Peak RSS ({mem['models']} models; {mem['settings']})", "",
                  "| run | frames | peak RSS of the process | peak while loading | peak during the run | "
                  "growth during the run | seconds |", "|---|---|---|---|---|---|---|"]
        for key, r in mem["rss"].items():
            run_peak = "n/a" if r["run_peak_rss_mb"] is None else f"{r['run_peak_rss_mb']:.1f} MiB"
            growth = "n/a" if r["run_growth_mb"] is None else f"{r['run_growth_mb']:+.1f} MiB"
            lines.append(f"| {key} | {r['frames']} | {r['peak_rss_mb']:.1f} MiB | {r['load_peak_rss_mb']:.1f} MiB "
                         f"| {run_peak} | {growth} | {r['seconds']} |")
    if report.get("errors"):
        lines += ["", "## Sections that failed", ""] + [f"- {k}: {v}" for k, v in report["errors"].items()]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"

