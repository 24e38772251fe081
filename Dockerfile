# AdFame's own processes (worker, REST API) as one image; see docker-compose.yaml.
#   docker build -t adfame:local .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user, and a state folder it owns (a named volume in compose).
RUN useradd --create-home --uid 10001 --user-group adfame \
    && install -d -o adfame -g adfame /var/lib/adfame

# Java for Spark: the spark-master/spark-worker services run PySpark's own jars from this image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

# The pinned dependencies first, in their own layer: code changes do not reinstall them.
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock && rm /tmp/requirements.lock

# Then the project itself, without letting pip resolve anything beyond the lock.
COPY . /tmp/adfame-src
RUN pip install --no-deps /tmp/adfame-src && rm -rf /tmp/adfame-src

USER adfame
WORKDIR /var/lib/adfame
ENV ADFAME_STATE_DIR=/var/lib/adfame

# The REST API (only the service that serves it publishes it).
EXPOSE 8000

CMD ["adfame", "--help"]
