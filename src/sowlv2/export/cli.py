"""``sowlv2 export RESULT_FOLDER --format FORMAT ... [--output DIR] [--source PATH]``."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from . import FORMAT_NAMES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"export: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sowlv2 export", description="Write training-data exports of an existing result folder "
                "(results.json and the source frames), without running any model.")
    p.add_argument("result", metavar="RESULT_FOLDER", help="one input's result folder (holds results.json)")
    p.add_argument("-f", "--format", nargs="+", required=True, metavar="FORMAT",
                   help=f"one or more of: {', '.join(FORMAT_NAMES)}")
    p.add_argument("-o", "--output", help="folder the formats go in, as <output>/<format>/ "
                                          "(default: RESULT_FOLDER/export)")
    p.add_argument("--source", help="the image, video or frame folder the run read (default: the path "
                                    "recorded in the run's run.json)")
    p.add_argument("--overwrite", action="store_true", help="replace formats already in the output folder")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but warnings and errors")
    return p


def export_main(argv: list[str]) -> int:
    """Run ``sowlv2 export``; returns 0 (errors are raised as SOWLv2Error for the main CLI to print)."""
    from ..cli import setup_logging
    from .replay import export_result

    ns = build_parser().parse_args(argv)
    setup_logging(False, ns.quiet)
    written = export_result(ns.result, ns.format, output=ns.output, source=ns.source, overwrite=ns.overwrite)
    if not ns.quiet:
        for path in written:
            print(f"wrote {path}", file=sys.stdout)
    return 0
