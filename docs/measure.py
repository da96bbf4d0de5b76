"""Measure every number the README and the docs quote, and redraw the pictures in docs/.

    python docs/measure.py                      # every part (about 20 minutes with the preset)
    python docs/measure.py --only synthetic,fit  # some parts; the others keep their numbers
    python docs/measure.py --list               # the parts and what each runs

Each part runs what a reader would run (``python train.py ...``, the README's ``fit`` snippet,
the examples), as a new process with the environment unchanged, on the code of this checkout.
The results go to ``docs/results.json`` (the parts measured now replace their old entries)
and ``docs/results.md`` (the same as tables, a page of the docs). Accuracies are exact (they
are deterministic); times are wall-clock seconds and come with the machine's load: the
1-minute load average before and after, and the share of the CPUs that other processes
used meanwhile (Linux). Rerun before a release, then update any number the README quotes:
``python -m pytest tests/test_readme.py`` fails while README.md and results.json disagree.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS_JSON = DOCS / "results.json"
RESULTS_MD = DOCS / "results.md"
README = ROOT / "README.md"


# --- the machine's load ------------------------------------------------------------------

def _busy_jiffies():
    """Busy CPU time of the whole machine in clock ticks since boot, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Timed:
    """Wall time of a block, with the load average around it and the others' CPU share."""

    def __enter__(self):
        self.load_before = round(os.getloadavg()[0], 2)
        self.busy, self.ours, self.start = _busy_jiffies(), _children_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.load_after = round(os.getloadavg()[0], 2)
        busy = _busy_jiffies()
        self.others = None
        if busy is not None and self.busy is not None:
            cpus = os.cpu_count() or 1
            busy_s = (busy - self.busy) / os.sysconf("SC_CLK_TCK")
            ours = _children_cpu() - self.ours
            self.others = round(max(0.0, busy_s - ours) / (self.seconds * cpus), 2)
        return False

    def record(self):
        return {"seconds": round(self.seconds, 1), "load_before": self.load_before,
                "load_after": self.load_after, "others_cpu_share": self.others}


# --- running what a reader runs ------------------------------------------------------------

def _env():
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(args, cwd):
    """Run ``python ARGS`` in ``cwd``; its stdout, or SystemExit with its output on failure."""
    done = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measure.py: {' '.join(map(str, args))} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _number(pattern, text, what):
    found = re.findall(pattern, text)
    if not found:
        raise SystemExit(f"measure.py: no {what} in the output ({pattern!r}):\n{text[-2000:]}")
    return float(found[-1])


def train_run(flags, work, name):
    """``python train.py FLAGS`` into a fresh run folder; its numbers and the folder."""
    out = Path(work) / name
    with Timed() as t:
        stdout = _run([ROOT / "train.py", *flags, "--no-progress", "--out", out], work)
    epochs = json.loads((out / "history.json").read_text())["epochs"]
    without = re.findall(r"test-time augmentation, ([0-9.]+) without\) on", stdout)
    return {"command": " ".join(["python train.py", *flags]),
            "test_acc": _number(r"test accuracy ([0-9.]+)", stdout, "test accuracy"),
            **({"test_acc_without_tta": float(without[-1])} if without else {}),
            "test_images": int(_number(r"on (\d+) \S+ test images", stdout, "test set size")),
            "best_val_acc": max(e["val_acc"] for e in epochs),
            "epochs": len(epochs),
            "training_seconds": round(sum(e["seconds"] for e in epochs), 1),
            **t.record()}, out


def _write(path, text):
    """Write a text file atomically (a rename), so an interrupted run leaves the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _keep_picture(source, name):
    shutil.copyfile(source, DOCS / name)
    return f"docs/{name}"


# --- the parts ---------------------------------------------------------------------------

def part_synthetic(work):
    """python train.py --dataset synthetic (the default run without real data); docs/report.png"""
    result, out = train_run(["--dataset", "synthetic"], work, "synthetic")
    result["picture"] = _keep_picture(out / "report.png", "report.png")
    return result


def part_fashion(work):
    """python train.py --dataset fashion-mnist (the default first run on Fashion-MNIST)"""
    return train_run(["--dataset", "fashion-mnist"], work, "fashion")[0]


def part_preset(work):
    """python train.py --preset fashion (about 15 minutes); docs/report_fashion.png"""
    result, out = train_run(["--preset", "fashion"], work, "preset")
    result["picture"] = _keep_picture(out / "report.png", "report_fashion.png")
    return result


def part_preset_seed1(work):
    """python train.py --preset fashion --seed 1 (about 15 minutes): the preset's second seed"""
    return train_run(["--preset", "fashion", "--seed", "1"], work, "preset_seed1")[0]


def part_variants(work):
    """three networks on the synthetic set (vgg_small with SGD, the CS231n three-layer net,
    softmax regression); their curves are docs/loss_curves.png"""
    variants = {"vgg_small, sgd": ["--dataset", "synthetic", "--optimizer", "sgd"],
                "three_layer_convnet": ["--dataset", "synthetic", "--model", "three_layer_convnet",
                                        "--lr", "3e-4"],
                "linear": ["--dataset", "synthetic", "--model", "linear", "--lr", "1e-3"]}
    results, folders = {}, []
    for name, flags in variants.items():
        folder_name = name.replace(", ", "-")
        results[name], out = train_run(flags, work, folder_name)
        folders.append(str(out))
    code = ("import sys\nfrom minicnn.viz import plot_runs\n"
            "plot_runs(sys.argv[2:], path=sys.argv[1], "
            "title='synthetic set: vgg_small vs the three-layer net vs softmax regression')\n")
    _run(["-c", code, DOCS / "loss_curves.png", *folders], work)
    return {"runs": results, "picture": "docs/loss_curves.png"}


FIT_BLOCK_START = "# 1. data:"


def readme_fit_snippet(num_train=5000, epochs=5):
    """The README's ``fit`` block with more images and epochs (the README quotes this run)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = next((b for b in blocks if FIT_BLOCK_START in b and "fit(" in b), None)
    if code is None:
        raise SystemExit(f"measure.py: README.md has no python block with {FIT_BLOCK_START!r}")
    for old, new in ((r"synthetic_cifar\(500,", f"synthetic_cifar({num_train},"),
                     (r"epochs=1,", f"epochs={epochs},")):
        code, n = re.subn(old, new, code)
        if n != 1:
            raise SystemExit(f"measure.py: expected one {old!r} in the README's fit block, found {n}")
    return code


def part_fit(work):
    """the README's fit snippet with 5,000 training images and epochs=5"""
    code = readme_fit_snippet() + "\nprint('BEST', max(history['val_acc']))\n"
    with Timed() as t:
        stdout = _run(["-c", code], work)
    return {"num_train": 5000, "epochs": 5,
            "best_val_acc": _number(r"BEST ([0-9.]+)", stdout, "best validation accuracy"),
            "val_images": 200, **t.record()}


def part_examples(work):
    """python examples/<each>.py, with the accuracies they print"""
    results = {}
    for script in sorted((ROOT / "examples").glob("*.py")):
        folder = Path(work) / script.stem
        folder.mkdir()
        with Timed() as t:
            stdout = _run([script], folder)
        entry = t.record()
        accs = re.findall(r"validation accuracy ([0-9.]+)%", stdout)
        if accs:
            entry["val_acc"] = round(float(accs[-1]) / 100, 4)
        results[script.name] = entry
    return results


def part_routing(work):
    """docs/pool_routing.png: the README's max-pool routing picture"""
    code = ("import sys\nimport numpy as np\nfrom minicnn.layers import MaxPool2D\n"
            "from minicnn.viz import pool_routing_figure\n"
            "x = np.array([[1, 3, 3, 0], [2, 3, 1, 1], [5, 5, 2, 2], [0, 5, 2, 0]], dtype=float)\n"
            "pool_routing_figure(MaxPool2D(2), x, path=sys.argv[1])\n")
    _run(["-c", code, DOCS / "pool_routing.png"], work)
    return {"picture": "docs/pool_routing.png"}


PARTS = {"synthetic": part_synthetic, "fashion": part_fashion, "fit": part_fit,
         "examples": part_examples, "variants": part_variants, "routing": part_routing,
         "preset": part_preset, "preset_seed1": part_preset_seed1}


# --- the results file and its page -------------------------------------------------------

def _machine():
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    import numpy
    return {"commit": commit, "uncommitted_changes": dirty, "python": platform.python_version(),
            "numpy": numpy.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
            "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "processor": _cpu_model(),
            # minicnn's threads default to the CPUs available unless MINICNN_NUM_THREADS is set
            "threads_env": {k: os.environ[k] for k in ("MINICNN_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "OMP_NUM_THREADS") if k in os.environ}}


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def pct(acc):
    """An accuracy as the docs write it: ``0.9725`` -> ``'97.25 %'``."""
    return f"{100 * acc:.2f} %"


def readme_claims(results):
    """What README.md must say, as it says it, for the parts measured: {what: text}."""
    parts = results["parts"]
    claims = {}
    if "synthetic" in parts:
        claims["synthetic test accuracy"] = pct(parts["synthetic"]["result"]["test_acc"])
    if "fashion" in parts:
        claims["Fashion-MNIST test accuracy"] = pct(parts["fashion"]["result"]["test_acc"])
    if "fit" in parts:
        claims["fit snippet, best validation accuracy"] = pct(parts["fit"]["result"]["best_val_acc"])
    for part, seed in (("preset", 0), ("preset_seed1", 1)):
        if part in parts:
            r = parts[part]["result"]
            claims[f"preset, seed {seed}"] = (f"{pct(r['test_acc'])} (seed {seed}, "
                                              f"{r['seconds'] / 60:.1f} min)")
    return claims


def _load(r):
    others = "" if r.get("others_cpu_share") is None else f", others {100 * r['others_cpu_share']:.0f} % CPU"
    return f"load {r['load_before']:.2f}→{r['load_after']:.2f}{others}"


def _run_row(r):
    without = f", {pct(r['test_acc_without_tta'])} without TTA" if "test_acc_without_tta" in r else ""
    return (f"| `{r['command']}` | {r['epochs']} | {pct(r['test_acc'])}{without} ({r['test_images']:,}) | "
            f"{pct(r['best_val_acc'])} | {r['seconds']:.0f} s ({r['training_seconds']:.0f} s training) | "
            f"{_load(r)} |")


def results_page(results):
    parts = results["parts"]
    lines = ["# Measured results", "",
             "Generated by `python docs/measure.py` from [results.json](results.json); do not edit by",
             "hand. Accuracies are exact and reproduce on a rerun of the same code; times are",
             "wall-clock and depend on the machine and on what else runs on it, so each comes with",
             "the 1-minute load average before→after and the share of the CPUs that other processes",
             "used meanwhile.", ""]
    machines = {p["machine"]["processor"] for p in parts.values() if p.get("machine")}
    lines += [f"Machine: {', '.join(sorted(filter(None, machines)))}; "
              f"{next(iter(parts.values()))['machine']['cpus']} CPUs.", ""] if parts else []
    runs = [parts[k]["result"] for k in ("synthetic", "fashion", "preset", "preset_seed1")
            if k in parts]
    runs += [r for k in ("variants",) if k in parts for r in parts[k]["result"]["runs"].values()]
    if runs:
        lines += ["## `train.py` runs", "",
                  "| command | epochs | test accuracy (images) | best validation accuracy | time | load |",
                  "|---|---|---|---|---|---|", *map(_run_row, runs), ""]
    if "fit" in parts:
        r = parts["fit"]["result"]
        lines += ["## The README's `fit` snippet", "",
                  f"With {r['num_train']:,} training images and `epochs={r['epochs']}`: best validation "
                  f"accuracy **{pct(r['best_val_acc'])}** ({r['val_images']} images) in {r['seconds']:.0f} s "
                  f"({_load(r)}).", ""]
    if "examples" in parts:
        lines += ["## Examples", "", "| script | validation accuracy | time | load |", "|---|---|---|---|"]
        for name, r in parts["examples"]["result"].items():
            acc = f"{100 * r['val_acc']:.1f} %" if "val_acc" in r else "—"
            lines.append(f"| `examples/{name}` | {acc} | {r['seconds']:.1f} s | {_load(r)} |")
        lines.append("")
    pictures = [parts[k]["result"]["picture"] for k in PARTS
                if k in parts and "picture" in parts[k]["result"]]
    if pictures:
        lines += ["## Pictures", "", "Redrawn by the same script: "
                  + ", ".join(f"`{p}`" for p in pictures) + ".", ""]
    lines += ["## When", "", "| part | measured (UTC) | commit |", "|---|---|---|"]
    for name, p in parts.items():
        changes = " + changes" if p["machine"]["uncommitted_changes"] else ""
        commit = (p["machine"]["commit"] or "?") + changes
        lines.append(f"| {name} | {p['when']} | {commit} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="docs/measure.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=lambda s: s.split(","), default=None, metavar="PART[,PART]",
                        help=f"parts to measure (default: all): {', '.join(PARTS)}")
    parser.add_argument("--skip", type=lambda s: s.split(","), default=[], metavar="PART[,PART]",
                        help="parts to leave out, e.g. --skip preset")
    parser.add_argument("--list", action="store_true", help="list the parts and exit")
    parser.add_argument("--page-only", action="store_true",
                        help="rewrite docs/results.md from docs/results.json without measuring")
    args = parser.parse_args(argv)
    if args.list:
        for name, part in PARTS.items():
            print(f"{name:10s} {' '.join(part.__doc__.split())}")
        return
    chosen = args.only or list(PARTS)
    unknown = sorted(set(chosen + args.skip) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"parts": {}}
    if not args.page_only:
        for name in [p for p in chosen if p not in args.skip]:
            print(f"measuring {name}: {' '.join(PARTS[name].__doc__.split())}", flush=True)
            when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
            with tempfile.TemporaryDirectory(prefix=f"measure-{name}-") as work:
                result = PARTS[name](work)
            results["parts"][name] = {"when": when, "machine": _machine(), "result": result}
            results["parts"] = {k: results["parts"][k] for k in PARTS if k in results["parts"]}
            _write(RESULTS_JSON, json.dumps(results, indent=1, ensure_ascii=False) + "\n")
            print(json.dumps(result, ensure_ascii=False), flush=True)
    _write(RESULTS_MD, results_page(results))
    print(f"wrote {RESULTS_JSON.relative_to(ROOT)} and {RESULTS_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
