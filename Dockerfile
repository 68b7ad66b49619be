# The image cluster.yaml and the KubeRay manifests run: Ray's GPU base plus vda.
#   docker build -t <registry>/vda:<tag> .
# The base image's Python and Ray versions must match pyproject (Python 3.11,
# ray 2.60.0). torch / torchvision come from PyPI here (CUDA builds).
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /home/ray/vda
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users vda ./vda
COPY --chown=ray:users model ./model
COPY --chown=ray:users platform ./platform
COPY --chown=ray:users jobs ./jobs
RUN pip install --no-cache-dir . && pip check && python -c "import vda.jobs.cli, platform; platform.system()"

ENV RAY_USAGE_STATS_ENABLED=0 \
    MLFLOW_DISABLE_TELEMETRY=true
