"""Evaluation of depth predictions against prepared data sets."""
