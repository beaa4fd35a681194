# Stand-in for the existing services (notes, rag, ocr, ...): app.py, one image for all; and
# webhook.py, the e2e test's Alertmanager receiver.
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE}
COPY app.py webhook.py /app/
LABEL org.llmstack.standin="app"
USER 65534:65534
ENTRYPOINT ["python3", "/app/app.py"]
