"""Learners and what they need: features, the two models, tuning, device choice."""
