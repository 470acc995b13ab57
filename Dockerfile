# optibridge: `optibridge serve` on a slim Python, as a non-root user.
# The service migrates the database at start-up (replicas take turns under a PostgreSQL lock),
# so a new image needs no separate migration step. Configuration: mount the TOML file at
# /etc/optibridge/optibridge.toml and pass the secrets it names as environment variables.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPTIBRIDGE_CONFIG=/etc/optibridge/optibridge.toml
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/optibridge --create-home optibridge
COPY --from=build /install /usr/local
WORKDIR /var/lib/optibridge
USER 10001
EXPOSE 8080
# Liveness only; /readyz (database reachable, migrations current) is for the load balancer.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["optibridge", "serve"]
