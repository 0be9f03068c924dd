# syntax=docker/dockerfile:1.7
# The web page (Streamlit, web/app.py) as its own small image; it talks to TorchServe over
# HTTP with the key from the shared run volume (docker-compose.yml, profile "web").
#   docker build -f docker/web.Dockerfile -t nsmc-sentiment-web .
FROM python:3.11.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 PYTHONPATH=/app
COPY docker/constraints.txt /tmp/constraints.txt
# Versions are pinned by docker/constraints.txt (-c), not on this line.
# hadolint ignore=DL3013
RUN pip install -c /tmp/constraints.txt streamlit requests \
 && rm /tmp/constraints.txt \
 && useradd --create-home --uid 1000 --shell /usr/sbin/nologin web
WORKDIR /app
COPY sentiment_client/ sentiment_client/
COPY web/ web/
# The same uid as TorchServe's: its key file is readable by its owner only.
USER 1000:1000
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "web/app.py", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
