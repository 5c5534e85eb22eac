"""The datasets a budget can name, and CIFAR-10's size.

Section 3.2: "All our experiments are conducted on the CIFAR-10 dataset [9]". The built-in synthetic
stand-in (repro/runs/data.py: synthetic_split) lets every command run offline; it mirrors CIFAR-10's
shapes and, by default, its split sizes.
"""

SYNTHETIC = "synthetic"
CIFAR10 = "cifar10"
CIFAR10_SIZES = (50_000, 10_000)  # training and test images; the built-in data mirrors them by default
DATASETS = (SYNTHETIC, CIFAR10)
