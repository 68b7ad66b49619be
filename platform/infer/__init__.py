"""Bulk depth for video archives in object storage: a resumable Ray Data batch job."""
