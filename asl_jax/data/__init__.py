"""Annotations, features and input pipelines. Never touches devices."""
