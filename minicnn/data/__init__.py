"""Data: CIFAR-10 loading, a synthetic stand-in, preprocessing and batching."""
from minicnn.data.cifar10 import CIFAR10_MD5, CIFAR10_URL, Cifar10, download_cifar10, load_cifar10
from minicnn.data.preprocess import (DataLoader, UnnormalizedInputWarning, augment_crop_flip,
                                     check_normalized, fit_normalizer, normalize, random_crop,
                                     random_flip, train_val_split)
from minicnn.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar

__all__ = ["CIFAR10_MD5", "CIFAR10_URL", "Cifar10", "DataLoader", "SYNTHETIC_CLASSES",
           "UnnormalizedInputWarning", "augment_crop_flip", "check_normalized", "download_cifar10", "fit_normalizer", "load_cifar10",
           "normalize", "random_crop", "random_flip", "synthetic_cifar", "train_val_split"]
