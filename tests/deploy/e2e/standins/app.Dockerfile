# Stand-in for the existing services (notes, rag, ocr, ...): app.py, one image for all.
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE}
COPY app.py /app/app.py
LABEL org.llmstack.standin="app"
USER 65534:65534
ENTRYPOINT ["python3", "/app/app.py"]
