"""PauseRec: implicit reasoning with learnable pause tokens for LLM-based generative recommendation."""

__version__ = "0.1.0"
