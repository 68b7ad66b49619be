"""`vda logs SUBMISSION_ID`: the Ray Jobs API's logs for a submitted vda job."""

from __future__ import annotations

from .submit import add_id_arguments as add_arguments  # noqa: F401
from .submit import logs as run  # noqa: F401
