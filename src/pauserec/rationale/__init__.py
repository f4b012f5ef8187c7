"""Rationale acquisition for the explicit chain-of-thought arm: providers (template, local teacher LM,
OpenAI-compatible server) behind one interface, a disk cache, the target-quoting filter, and the stage itself."""

from .acquire import acquire_rationales, make_provider
from .base import Provider, RationaleRequest, quotes_title
from .store import load_rationales

__all__ = ["Provider", "RationaleRequest", "acquire_rationales", "load_rationales", "make_provider", "quotes_title"]
