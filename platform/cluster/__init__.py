"""Submitting jobs to a Ray cluster through the Jobs API."""
