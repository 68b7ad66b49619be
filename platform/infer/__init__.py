"""Bulk depth for video archives in object storage: a driver-owned pool of Ray actors.

`plan.py` lists the archive and what is done; `pool.py` sizes the actors from
the cluster; `scheduler.py` hands them videos and segments of long videos;
`worker.py` (decode, engine, writers) and `stitch.py` run on them; each video
commits its outputs and its manifest row (`commit.py`, `manifest.py`), so a
rerun redoes only what is not done.
"""
