# Stand-in for ollama/ollama: the part of Ollama's API and CLI the stacks use (ollama.py).
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE}
COPY ollama.py /bin/ollama
RUN chmod 0755 /bin/ollama
ENV OLLAMA_HOST=0.0.0.0:11434
LABEL org.llmstack.standin="ollama"
EXPOSE 11434
ENTRYPOINT ["/bin/ollama"]
CMD ["serve"]
