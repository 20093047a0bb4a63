FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hookline hookline
COPY api api
COPY delivery delivery
COPY dashboard dashboard
COPY composition composition
COPY migrations migrations
RUN pip install --no-cache-dir . && useradd --system hookline
USER hookline
EXPOSE 8000
# `hookline migrate` is safe to run from every replica at once (advisory lock)
CMD ["sh", "-c", "hookline migrate && hookline serve --host 0.0.0.0 --port 8000"]
