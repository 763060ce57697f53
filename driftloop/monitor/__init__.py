"""Monitoring steps run per batch, outside DVC: score, drift, labels, the retrain policy, alerts."""
