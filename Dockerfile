# welfare: API (default command) or worker (`welfare worker`), one image.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WELFARE_MEDIA_DIR=/var/lib/welfare/media

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY welfare ./welfare
COPY api ./api
COPY notifications ./notifications
RUN pip install . \
    && useradd --system --create-home --uid 10001 welfare \
    && mkdir -p /var/lib/welfare/media \
    && chown -R welfare:welfare /var/lib/welfare

USER welfare
EXPOSE 8000
VOLUME ["/var/lib/welfare/media"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

# Migrations first (idempotent), then the API: JSON logs with request ids, X-Forwarded-* honoured
# from WELFARE_FORWARDED_ALLOW_IPS (the proxy in front; docker-compose.yml runs the migrations
# once in its own service and starts the replicas with `welfare serve` directly).
ENV WELFARE_FORWARDED_ALLOW_IPS="*"
CMD ["sh", "-c", "welfare db upgrade && exec welfare serve --host 0.0.0.0 --port 8000"]
