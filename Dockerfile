# The procos CLI and workflow engine in a container (pgserver is installed but unused when
# VECTOR_ENDPOINT points at an external PostgreSQL with pgvector).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends zstd && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/procos
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY processes ./processes
COPY scripts ./scripts
RUN pip install --no-cache-dir -e .
ENV PROCOS_HOME=/var/lib/procos
VOLUME ["/var/lib/procos", "/snapshots"]
ENTRYPOINT ["procos"]
CMD ["--help"]
