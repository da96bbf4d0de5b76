"""Train a CNN and write a run folder: ``python train.py --help`` lists the flags.

The command itself lives in the package minicnn/cli/ (also installed as ``minicnn-train``).
"""
from minicnn.cli import train

if __name__ == "__main__":
    train(prog="train.py")
