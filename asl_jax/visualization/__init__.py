"""Figures of a trained detector: sensitivity curves, Gaussians, timelines, PR curves, losses."""
