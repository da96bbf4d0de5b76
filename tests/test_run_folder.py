"""The run folder under attack: one writer at a time (an OS lock that dies with its
process), a new run only in a new or empty folder, readers without a lock, and a run's
configuration as one checked object."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, channel_data, tiny_net, train_py
from minicnn.cli import train_command
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optim import Adam
from minicnn.serialization import load_npz
from minicnn.training import RunConfig, fit, load_run
from minicnn.training.run_folder import (
    LOCK,
    RunFolderBusyError,
    claim_run_folder,
    holds,
)

TINY = ["--dataset", "synthetic", "--num-train", "48", "--num-val", "16", "--num-test", "16",
        "--batch-size", "16", "--model", "three_layer_convnet", "--no-progress"]

#: A process that locks a run folder (as train.py does) and waits until it is killed.
HOLDER = textwrap.dedent("""
    import sys, time
    from minicnn.training.run_folder import claim_run_folder
    lock = claim_run_folder(sys.argv[1], resume=sys.argv[2] == "resume")
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def holder():
    """Start a process holding the lock of a folder: ``holder(folder, resume=False)``;
    killed with SIGKILL at the end if still alive."""
    started = []

    def start(folder, resume=False):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder),
                                 "resume" if resume else "new"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT))
        started.append(proc)
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        return proc
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()


def kill_hard(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def quick_fit(out, epochs=1, resume=False):
    (x, y), (xv, yv) = channel_data(64, 48)
    net = tiny_net(0)
    return fit(net, SoftmaxCrossEntropy(), Adam(net.parameters(), lr=1e-2), (x, y), (xv, yv),
               epochs, 16, out_dir=out, resume=resume, progress=False), net


def cli_error(argv, capsys=None):
    """The one-line error of ``train.py argv`` run in this process (SystemExit's message)."""
    with pytest.raises(SystemExit) as e:
        train_command.main([str(a) for a in argv])
    message = e.value.code
    assert isinstance(message, str) and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished train.py run folder (1 epoch)."""
    out = tmp_path_factory.mktemp("runs") / "one_epoch"
    train_py(*TINY, "--epochs", 1, "--out", out)
    return out


# -- one writer ------------------------------------------------------------------------

def test_a_second_writer_is_refused_at_once_and_kill_9_leaves_no_stale_lock(tmp_path, holder):
    folder = tmp_path / "same"
    proc = holder(folder)
    busy = f"{str(folder)!r} is in use by another run (process {proc.pid} is writing it)"
    with pytest.raises(RunFolderBusyError) as e:
        claim_run_folder(folder)
    assert str(e.value).startswith(busy) and "\n" not in str(e.value)
    with pytest.raises(RunFolderBusyError, match="process " + str(proc.pid)):
        quick_fit(folder)
    result = train_py(*TINY, "--epochs", 1, "--out", folder, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"train.py: error: {busy}; wait for it to end or choose " \
                                    f"another folder"
    assert os.listdir(folder) == [LOCK]  # the refused runs wrote nothing
    kill_hard(proc)
    assert os.listdir(folder) == [LOCK]  # left behind by the killed process, but not held
    history, _ = quick_fit(folder)  # the OS released the lock with the process
    assert len(history) == 1
    assert sorted(os.listdir(folder)) == ["best.npz", "checkpoint.npz", "history.csv",
                                          "history.json"]


def test_two_train_py_on_one_out_the_second_is_refused_and_the_first_keeps_its_results(
        tmp_path):
    """Run B starts on run A's --out while A trains: B is refused in one line and writes
    nothing; A's printed results are A's own. (Should A be done already when B looks, B is
    refused as a run's folder instead; it never trains.)"""
    out = tmp_path / "same"
    a = subprocess.Popen([sys.executable, "train.py", *TINY[:2], "--num-train", "1000",
                          "--num-val", "100", "--num-test", "100", "--epochs", "2",
                          "--model", "vgg_small", "--widths", "4,4,4", "--seed", "1",
                          "--no-progress", "--out", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        first = a.stdout.readline()
        while first and not first.startswith("run folder:"):
            first = a.stdout.readline()
        b = train_py(*TINY, "--epochs", 1, "--seed", 2, "--lr", 0.01, "--out", out, check=False)
        rest, err = a.communicate(timeout=600)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert b.returncode == 1 and "Traceback" not in b.stderr
    assert len(b.stderr.strip().splitlines()) == 1
    assert (f"process {a.pid} is writing it" in b.stderr
            or "already holds a run" in b.stderr), b.stderr
    assert a.returncode == 0, err
    config = json.loads((out / "config.json").read_text())
    assert (config["seed"], config["num_train"], config["lr"]) == (1, 1000, 0.003)
    history = json.loads((out / "history.json").read_text())
    best = max(e["val_acc"] for e in history["epochs"])
    assert f"best validation accuracy {best:.4f}" in rest
    assert sorted(os.listdir(out)) == ["best.npz", "checkpoint.npz", "config.json",
                                       "history.csv", "history.json", "loss.png", "report.png"]


def test_resume_is_refused_while_another_process_writes_the_run(run, holder):
    before = {name: (run / name).read_bytes() for name in os.listdir(run)}
    proc = holder(run, resume=True)
    result = train_py("--resume", run, "--epochs", 2, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"process {proc.pid} is writing it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(RunFolderBusyError, match=f"process {proc.pid}"):
        claim_run_folder(run, resume=True)
    kill_hard(proc)
    assert {name: (run / name).read_bytes() for name in os.listdir(run) if name != LOCK} == before


def test_readers_need_no_lock(run, holder, capsys):
    """minicnn-plot, load_run and --evaluate read a folder while a writer holds it."""
    proc = holder(run, resume=True)
    from minicnn.cli import plot_command
    plot_command.main([str(run), "-o", str(run.parent / "curves.png")])
    assert (run.parent / "curves.png").exists()
    model, config, history = load_run(run)
    assert config["model"] == "three_layer_convnet" and len(history) == 1
    result = train_py("--evaluate", run / "best.npz")
    assert "test accuracy" in result.stdout
    assert proc.poll() is None  # still holding it


def test_train_py_holds_the_lock_for_the_whole_run(tmp_path, monkeypatch):
    """While fit runs inside train.py the folder is locked by this process (another process
    is refused); afterwards it is free and run.lock is gone."""
    out = tmp_path / "run"
    seen = []
    real_fit = train_command.fit

    def fit_and_probe(*args, **kwargs):
        probe = subprocess.run([sys.executable, "-c", HOLDER, str(out), "resume"],
                               capture_output=True, text=True, cwd=ROOT, timeout=120,
                               env=dict(os.environ, PYTHONPATH=ROOT))
        seen.append((holds(out), probe.returncode, probe.stderr.strip().splitlines()[-1]))
        return real_fit(*args, **kwargs)
    monkeypatch.setattr(train_command, "fit", fit_and_probe)
    train_command.main([*TINY, "--epochs", "1", "--out", str(out)])
    (held, code, last_line), = seen
    assert held and code == 1
    assert last_line.endswith(f"RunFolderBusyError: {str(out)!r} is in use by another run "
                              f"(process {os.getpid()} is writing it); wait for it to end "
                              f"or choose another folder")
    assert not holds(out) and LOCK not in os.listdir(out)
    claim_run_folder(out, resume=True).release()


def test_fit_holds_the_lock_only_during_the_call(tmp_path):
    out = tmp_path / "fit"
    quick_fit(out)
    assert not holds(out) and LOCK not in os.listdir(out)
    history, _ = quick_fit(out, epochs=2, resume=True)
    assert len(history) == 2 and LOCK not in os.listdir(out)


# -- a new run needs a new or empty folder ----------------------------------------------

def _refusals(tmp_path):
    """(path, what is checked untouched, expected message part) for every refused --out."""
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    others = tmp_path / "mine"
    others.mkdir()
    (others / "config.json").write_text("{}")
    (others / "history.csv").write_text("my own table")
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"\xff\xd8")
    dangling = tmp_path / "link"
    dangling.symlink_to(tmp_path / "nowhere")
    return [
        (afile, "is a file, not a folder; a run needs a new or empty folder"),
        ("", "'' names no folder (it would write into the current one)"),
        (stranger, "is not empty (it holds 'cat.jpg') and is not a run folder"),
        (others, "already holds a run"),
        (dangling, f"is a broken symbolic link (to {str(tmp_path / 'nowhere')!r})"),
    ]


def _snapshot(tmp_path):
    return sorted((str(p.relative_to(tmp_path)), p.is_symlink(),
                   p.read_bytes() if p.is_file() and not p.is_symlink() else None)
                  for p in tmp_path.rglob("*"))


def test_out_must_be_new_or_empty_and_a_refused_folder_is_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refusals = _refusals(tmp_path)
    before = _snapshot(tmp_path)
    for path, part in refusals:
        message = cli_error([*TINY, "--epochs", 1, "--out", path])
        assert message.startswith("train.py: error: ") and part in message, message
        assert "File exists" not in message
        assert _snapshot(tmp_path) == before, path
    assert "continue it with --resume" in cli_error([*TINY, "--epochs", 1, "--out", refusals[3][0]])


def test_fit_out_dir_follows_the_same_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refusals = _refusals(tmp_path)
    before = _snapshot(tmp_path)
    for path, part in refusals:
        with pytest.raises(ValueError) as e:
            quick_fit(str(path))
        assert part in str(e.value) and "\n" not in str(e.value), str(e.value)
        assert str(e.value).startswith(("out_dir ", repr(str(path))))
        assert _snapshot(tmp_path) == before, path
    with pytest.raises(ValueError, match="already holds a run; pass resume=True to continue it"):
        quick_fit(refusals[3][0])
    empty = tmp_path / "empty"
    empty.mkdir()
    quick_fit(empty)  # an existing empty folder is fine
    assert "best.npz" in os.listdir(empty)


def test_resume_into_a_file_is_refused(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(ValueError, match=r"out_dir '.*f' is not a folder; resuming needs the run's"):
        quick_fit(afile, resume=True)
    assert afile.read_text() == "x"


# -- messages --------------------------------------------------------------------------

def test_huge_widths_are_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the network was built")
    monkeypatch.setattr(train_command, "build_model_for", never)
    message = cli_error([*TINY[:-3], "--model", "vgg_small", "--widths",
                         "100000,100000,100000", "--out", tmp_path / "w"])
    assert message.startswith("train.py: error: --widths 100000,100000,100000: the network's "
                              "weights alone would need at least 2")
    assert message.endswith("choose narrower widths or a smaller model")
    assert not (tmp_path / "w").exists()


def test_weight_estimate_is_a_lower_bound_of_the_real_network():
    """The estimate never exceeds what building the network takes (its weights and the
    float64 draw of the largest), so no network that fits is refused."""
    from minicnn.training.build import build_model_for
    from minicnn.training.memory import weight_bytes
    for model in ("vgg_small", "resnet_small"):
        config = RunConfig.new("synthetic", model=model, widths=[8, 16])
        net = build_model_for(config)
        real = sum(p.data.nbytes for p in net.parameters())
        drawn = 8 * max(p.data.size for p in net.parameters())  # the float64 draw of the largest
        assert real / 2 < weight_bytes(config) <= real + drawn, model  # never refuses a fit
    assert weight_bytes(RunConfig.new("synthetic", model="linear")) == 0


@pytest.fixture
def unreadable_best(run):
    """A copy of the run's config.json and best.npz whose best.npz nobody may read."""
    import shutil
    import tempfile
    base = tempfile.mkdtemp(prefix="minicnn-unreadable-")
    os.chmod(base, 0o755)
    for name in ("config.json", "best.npz"):
        shutil.copy(run / name, os.path.join(base, name))
        os.chmod(os.path.join(base, name), 0o644)
    best = os.path.join(base, "best.npz")
    os.chmod(best, 0o000)
    yield best
    shutil.rmtree(base)


def test_evaluate_of_an_unreadable_file_says_it_is_a_permission_problem(unreadable_best):
    """Run as an ordinary user (root reads everything)."""
    code = textwrap.dedent(f"""
        import os
        from minicnn.cli import train_command  # imports done as root (the interpreter may
        if os.geteuid() == 0:                  # be root's), then become 'nobody', for whom
            os.setgid(65534)                   # permissions hold
            os.setuid(65534)
        train_command.main(["--evaluate", {unreadable_best!r}], prog="train.py")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd="/", env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"train.py: error: --evaluate {unreadable_best!r} cannot be read: permission denied "
        f"(the file is there; give yourself read access, e.g. chmod u+r {unreadable_best})")


def test_help_names_the_command_and_augment_lists_no_true(capsys):
    from minicnn.cli import train
    with pytest.raises(SystemExit) as e:
        train(["--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and text.startswith("usage: minicnn-train ")
    assert "True" not in text and "--augment [SPEC]" in text
    assert "crop, flip, erase joined by commas" in " ".join(text.split())
    with pytest.raises(SystemExit):
        train(["--batch-size", "0"])
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("minicnn-train: error: ")
    result = subprocess.run([sys.executable, "train.py", "--help"], capture_output=True,
                            text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            timeout=120)
    assert result.stdout.startswith("usage: train.py ")


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST is not installed")
def test_dataset_fashion_mnist_says_where_the_files_were_found(tmp_path):
    result = train_py("--dataset", "fashion-mnist", "--num-train", 64, "--num-val", 16,
                      "--num-test", 16, "--batch-size", 16, "--epochs", 1, "--model", "linear",
                      "--no-progress", "--out", tmp_path / "f")
    assert f"dataset: Fashion-MNIST from {FASHION}" in result.stdout


def test_load_run_with_a_model_loads_into_that_model(tmp_path):
    out = tmp_path / "fit"
    quick_fit(out, epochs=2)
    net = tiny_net(7)
    loaded, config, history = load_run(out, model=net)
    assert loaded is net and config is None and len(history) == 2 and not net.training
    saved = load_npz(out / "best.npz")
    assert all(np.array_equal(v, saved[k]) for k, v in net.state_dict().items())


# -- the run's configuration: one object ---------------------------------------------------

def test_run_config_round_trips_and_is_frozen(run):
    config = json.loads((run / "config.json").read_text())
    rc = RunConfig.from_dict(config)
    assert rc == config and rc.to_dict() == config and dict(rc) == config
    assert list(rc) == list(config)  # the file's order
    assert RunConfig.from_dict(rc.to_dict()) == rc
    with pytest.raises(dataclasses.FrozenInstanceError):
        rc.lr = 1.0
    with pytest.raises(ValueError, match="RunConfig: field 'lr' must be a finite number > 0"):
        dataclasses.replace(rc, lr=-1.0)


def test_run_config_new_applies_defaults_and_names_flags():
    rc = RunConfig.new("fashion-mnist", optimizer="sgd", label=lambda k: "--" + k)
    assert (rc.epochs, rc.num_train, rc.lr, rc.model_args) == (3, 10_000, 0.05, {"in_channels": 1})
    with pytest.raises(ValueError, match="^--widths is for vgg_small and resnet_small, not linear"):
        RunConfig.new("synthetic", model="linear", widths=[4], label=lambda k: "--" + k)
    with pytest.raises(ValueError, match="^--num_val 60000: Fashion-MNIST has 60,000"):
        RunConfig.new("fashion-mnist", num_val=60_000, label=lambda k: "--" + k)


def test_run_config_resume_rule(run):
    rc = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    later = rc.resumed(epochs=5, data_dir="/elsewhere")
    assert (later.epochs, later.data_dir, later.lr) == (5, "/elsewhere", rc.lr)
    assert rc.resumed() == rc
    later.check_resumes(rc.to_dict(), "config.json")  # epochs and data_dir may change
    with pytest.raises(ValueError, match="lr"):
        dataclasses.replace(rc, lr=rc.lr / 2).check_resumes(rc.to_dict(), "config.json")


WRITER = textwrap.dedent("""
    import sys
    from minicnn.training import History, load_run
    from minicnn.training.run_folder import claim_run_folder, save_config
    folder = sys.argv[1]
    model, config, history = load_run(folder)
    big = History(list(range(20000)), history.epochs)  # a history.json of some 100 KB
    with claim_run_folder(folder, resume=True):
        print("writing", flush=True)
        for i in range(int(sys.argv[2])):
            big.save(folder + "/history.json")
            save_config(folder, config)
            model.save(folder + "/best.npz")
""")


def test_readers_never_see_a_half_written_file(run, tmp_path):
    """A writer process rewrites history.json, config.json and best.npz over and over while
    this process reads them: every read gets a whole file (old or new)."""
    import shutil

    from minicnn.training import History
    from minicnn.training.run_folder import load_config
    folder = tmp_path / "copy"
    shutil.copytree(run, folder)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        reads = 0
        while proc.poll() is None:
            History.load(folder / "history.json")
            load_config(folder)
            load_npz(folder / "best.npz")
            reads += 1
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert reads > 0
    assert len(History.load(folder / "history.json").iteration_loss) == 20000


def test_another_thread_of_the_same_process_is_a_second_writer(tmp_path):
    import threading
    out = tmp_path / "run"
    errors = []
    with claim_run_folder(out):
        assert holds(out)

        def second():
            try:
                quick_fit(out)
            except RunFolderBusyError as e:
                errors.append(str(e))
        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
    assert errors == [f"{str(out)!r} is in use by another run (process {os.getpid()} is "
                      f"writing it); wait for it to end or choose another folder"]
    assert not out.exists()  # created by the claim, nothing written: removed again


def test_a_report_that_cannot_be_drawn_is_a_warning_after_the_results(tmp_path, monkeypatch,
                                                                       capsys):
    import minicnn.viz

    def broken(run_dir, path=None, **inputs):
        raise RuntimeError("no fonts")
    monkeypatch.setattr(minicnn.viz, "write_report", broken)
    train_command.main([*TINY, "--epochs", "1", "--out", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert "test accuracy" in out and (tmp_path / "r" / "loss.png").exists()
    assert err.strip().splitlines()[-1] == "warning: report.png not written (RuntimeError: no fonts)"


def test_evaluate_with_huge_widths_in_config_json_is_one_line(run, tmp_path):
    config = json.loads((run / "config.json").read_text())
    config.update(model="vgg_small", model_args={"in_channels": 3, "widths": [100000] * 3})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "best.npz").write_bytes((run / "best.npz").read_bytes())
    message = cli_error(["--evaluate", tmp_path / "best.npz"])
    assert message.startswith(f"train.py: error: {tmp_path / 'config.json'}: model_args.widths "
                              f"[100000, 100000, 100000]: the network's weights alone would "
                              f"need at least ")
