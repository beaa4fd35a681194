# Stand-in for the existing services (notes, rag, ocr, ...): app.py, one image for all; and
# with --webhook, the e2e test's Alertmanager receiver.
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE}
COPY app.py /app/app.py
LABEL org.llmstack.standin="app"
USER 65534:65534
ENTRYPOINT ["python3", "/app/app.py"]
