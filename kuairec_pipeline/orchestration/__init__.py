"""Dagster wiring only: assets call plain functions from dataset/, features/, models/, evaluation/."""
