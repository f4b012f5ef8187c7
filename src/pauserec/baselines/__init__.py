"""Classic baselines evaluated under the same contract as the LLM arms."""
