# The reingest code location as an image: the user-code deployment of Dagster's Helm chart serves
# it over gRPC, and K8sRunLauncher starts every run (a backfill's runs included) as a Job of this
# same image. Build: docker build -t reingest:latest .   (not built or run on the project's CI)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    # A run's per-partition materializations are stored as one batch (docs/scaling.md).
    DAGSTER_EVENT_BATCH_SIZE=1000

WORKDIR /opt/reingest
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[k8s]"

# Runs get the REINGEST_* settings and secrets from the chart's values (deploy/helm/values.yaml).
EXPOSE 4000
CMD ["dagster", "api", "grpc", "-m", "reingest_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
