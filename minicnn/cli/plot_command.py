"""``minicnn-plot RUN_DIR [RUN_DIR ...] -o curves.png``: the loss and accuracy curves of
runs (``python -m minicnn.cli.plot_command`` does the same)."""
import argparse
import sys

from ..serialization import error_message
from ..viz.curves import plot_runs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minicnn-plot",
                                     description="Plot the loss and accuracy curves of runs.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folder(s) holding history.json")
    parser.add_argument("-o", "--output", default="curves.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--title", default=None, help="heading over the plots")
    parser.add_argument("--smoothing", type=float, default=0.9,
                        help="EMA factor for the loss, 0 to 1 (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.smoothing < 1:
        parser.error(f"--smoothing must be in [0, 1), got {args.smoothing}")
    try:
        plot_runs(args.run_dirs, path=args.output, smoothing=args.smoothing, title=args.title)
    except (ValueError, OSError) as e:  # a broken history; a read-only or full disk
        parser.exit(1, f"minicnn-plot: error: {error_message(e)}\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
