"""Supervised fine-tuning of the backbone on an arm's sequences (Hugging Face Trainer)."""
