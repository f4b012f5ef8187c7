"""Moved to :mod:`pauserec.recommend`: LLM inference is not evaluation (training's validation, grounding, serving and
the evaluation's ranker all call it). This alias stays only until ``train/`` imports it from there."""

from ..recommend import Recommendations, recommend, recommend_from_prompts

__all__ = ["Recommendations", "recommend", "recommend_from_prompts"]
