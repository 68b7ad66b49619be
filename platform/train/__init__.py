"""Distributed training of the spatio-temporal head with Ray Train (V2) and MLflow."""
