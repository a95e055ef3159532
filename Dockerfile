# One image for every role: the service, the Locust master, the workers (and, later, the sampler sidecar).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY features features
COPY service service
COPY harness harness
COPY profiles profiles
RUN pip install --no-cache-dir -c constraints.txt .
COPY locustfiles locustfiles

EXPOSE 8000 8089 5557
# Listening beyond the container needs FEATURESTORE_WRITE_TOKEN (docker run -e FEATURESTORE_WRITE_TOKEN=...): the
# service refuses to start on a non-loopback address with open writes.
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]
