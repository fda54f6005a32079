# Slim image: the broker and the IoT agents in one process, running as a non-root user.
FROM python:3.11-slim AS build
# a C compiler lets the install compile the expansion module with mypyc (setup.py); the final image needs none
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY broker ./broker
COPY agents ./agents
COPY models ./models
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/ngsild --create-home ngsild
COPY --from=build /install /usr/local
COPY smart-data-models /opt/ngsild/smart-data-models
ENV SQLITE_PATH=/var/lib/ngsild/ngsild.sqlite3 \
    LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER ngsild
WORKDIR /var/lib/ngsild
VOLUME ["/var/lib/ngsild"]
EXPOSE 1026 4041 7896
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:1026/ready', timeout=2).status == 200 else 1)"
ENTRYPOINT ["ngsild-broker"]
