"""repro: reproduction suite for 'On Fragile Features and Batch Normalization in Adversarial Training'."""

__version__ = "0.1.0"
