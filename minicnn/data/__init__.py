"""Data: CIFAR-10, Fashion-MNIST and MNIST loading, a synthetic stand-in, preprocessing,
augmentation and batching."""
from minicnn.data.augment import (
                                AUGMENTATIONS,
                                Compose,
                                augment_crop,
                                augment_crop_flip,
                                build_augment,
                                erasing_boxes,
                                parse_augment,
                                random_crop,
                                random_erasing,
                                random_erasing_reference,
                                random_flip,
)
from minicnn.data.cifar10 import CIFAR10_MD5, CIFAR10_URL, Cifar10, download_cifar10, load_cifar10
from minicnn.data.idx import read_idx
from minicnn.data.mnist import (
                                FASHION_MNIST,
                                MNIST,
                                Mnist,
                                download_fashion_mnist,
                                download_mnist,
                                find_fashion_mnist,
                                find_mnist,
                                load_fashion_mnist,
                                load_mnist,
)
from minicnn.data.preprocess import (
                                DataLoader,
                                UnnormalizedInputWarning,
                                check_normalized,
                                fit_normalizer,
                                normalize,
                                train_val_split,
)
from minicnn.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar

__all__ = ["AUGMENTATIONS", "CIFAR10_MD5", "CIFAR10_URL", "Cifar10", "Compose", "DataLoader",
           "FASHION_MNIST", "MNIST", "Mnist", "SYNTHETIC_CLASSES", "UnnormalizedInputWarning",
           "augment_crop", "augment_crop_flip", "build_augment", "check_normalized",
           "download_cifar10", "download_fashion_mnist", "download_mnist", "erasing_boxes",
           "find_fashion_mnist", "find_mnist", "fit_normalizer", "load_cifar10",
           "load_fashion_mnist", "load_mnist", "normalize", "parse_augment", "random_crop",
           "random_erasing", "random_erasing_reference", "random_flip", "read_idx",
           "synthetic_cifar", "train_val_split"]
