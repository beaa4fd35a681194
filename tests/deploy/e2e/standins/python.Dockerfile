# Stand-in for python:<3.x>-slim: Debian's own Python on the debootstrap root filesystem.
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE}
RUN ln -sf /usr/bin/python3 /usr/local/bin/python
LABEL org.llmstack.standin="python"
CMD ["python3"]
