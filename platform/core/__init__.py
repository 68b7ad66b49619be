"""Configuration and other cross-cutting pieces the platform jobs share."""
