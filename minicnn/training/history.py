"""Training history: the loss of every iteration and one record per epoch."""
import csv
import json
import math

from ..serialization import atomic_path

#: Per-epoch columns, in CSV order.
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
           "iterations")


class History:
    """What ``fit`` measured.

    - ``iteration_loss``: list of floats, the training loss of every iteration, in order.
    - ``epochs``: list of dicts with the keys in ``COLUMNS``, one per finished epoch;
      ``iterations`` is the total number of iterations at the end of that epoch, so
      ``iteration_loss[:record["iterations"]]`` is everything up to it.

    ``history["val_acc"]`` gives one column as a list over epochs.
    """

    def __init__(self, iteration_loss=(), epochs=()):
        self.iteration_loss = [float(v) for v in iteration_loss]
        self.epochs = [dict(r) for r in epochs]

    def __getitem__(self, column):
        if column not in COLUMNS:
            raise KeyError(f"History has no column {column!r}; columns are {COLUMNS}")
        return [r[column] for r in self.epochs]

    def __len__(self):
        return len(self.epochs)

    def add_epoch(self, **record):
        missing = set(COLUMNS) - set(record)
        if missing:
            raise ValueError(f"History.add_epoch: missing {sorted(missing)}")
        self.epochs.append({k: record[k] for k in COLUMNS})

    @property
    def best_val_acc(self):
        """The highest validation accuracy so far (-inf before the first epoch, or when
        trained without validation data: the column holds None)."""
        return max((a for a in self["val_acc"] if a is not None), default=-math.inf)

    def to_dict(self):
        return {"iteration_loss": list(self.iteration_loss), "epochs": [dict(r) for r in self.epochs]}

    @classmethod
    def from_dict(cls, d):
        try:
            return cls(d["iteration_loss"], d["epochs"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a minicnn training history ({type(e).__name__}: {e})") from None

    def save(self, path):
        """Write everything to JSON (``history.json``), atomically."""
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            json.dump(self.to_dict(), f)

    def save_csv(self, path):
        """Write the per-epoch records to CSV (``history.csv``), one row per epoch."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.epochs)

    @classmethod
    def load(cls, path):
        """Read a ``history.json`` written by :meth:`save`."""
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except OSError as e:
            raise ValueError(f"cannot read history {path!r} ({e.strerror})") from None
        except ValueError as e:
            raise ValueError(f"history {path!r} is unreadable: {e}") from None

    def __repr__(self):
        last = self.epochs[-1] if self.epochs else None
        tail = (f", last val_acc={last['val_acc']:.4f}" if last else "")
        return f"History({len(self.epochs)} epochs, {len(self.iteration_loss)} iterations{tail})"
