"""``minicnn-report RUN_DIR``: write RUN_DIR/report.png, one page about a trained run
(``python -m minicnn.cli.report_command RUN_DIR`` does the same)."""
import argparse
import os
import sys

from ..serialization import error_message
from ..viz.report import write_report


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="minicnn-report",
        description="Write a one-page report.png for a run folder written by train.py "
                    "(minicnn-train). A folder written by fit(out_dir=...) has no "
                    "config.json: draw its report from Python with "
                    "minicnn.viz.write_report(folder, model=..., test_data=...).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by train.py")
    parser.add_argument("-o", "--output", default=None,
                        help="PNG to write (default: RUN_DIR/report.png)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run_dir):
        parser.exit(1, f"minicnn-report: error: {args.run_dir!r} is not a folder\n")
    try:
        path = write_report(args.run_dir, args.output)
    except (ValueError, OSError) as e:  # a broken run folder; a read-only or full disk
        hint = ""
        if not os.path.exists(os.path.join(args.run_dir, "config.json")) and \
                os.path.exists(os.path.join(args.run_dir, "history.json")):
            hint = (f"\nIts loss and accuracy curves need only history.json: "
                    f"minicnn-plot {args.run_dir} -o curves.png")
        parser.exit(1, f"minicnn-report: error: {error_message(e)}{hint}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
