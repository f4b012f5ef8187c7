"""Data: readers for the supported layouts, filtering, item text, and the leave-one-out split."""

from .dataset import Dataset

__all__ = ["Dataset"]
