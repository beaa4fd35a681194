# Stand-ins for prom/prometheus, prom/alertmanager and prom/blackbox-exporter: Debian 12's own
# builds (prometheus 2.42, prometheus-alertmanager 0.25, prometheus-blackbox-exporter 0.23, the
# versions the official tags name), laid out as the official images are: the binary under the
# official name in /bin, its configuration and data folders, the user nobody, busybox for
# wget and sh. The build context holds the packages' files (build.sh unpacks the .debs).
ARG STANDIN_BASE=llmstack-standin/debian:bookworm
FROM ${STANDIN_BASE} AS common
COPY root/bin/busybox /bin/busybox
RUN ln -s /bin/busybox /usr/local/bin/wget

FROM common AS prometheus
COPY root/usr/bin/prometheus root/usr/bin/promtool /bin/
COPY root/usr/share/prometheus/web /usr/share/prometheus/web
RUN mkdir -p /etc/prometheus /prometheus && chown 65534:65534 /prometheus
LABEL org.llmstack.standin="prometheus"
USER 65534:65534
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

FROM common AS alertmanager
COPY root/usr/bin/prometheus-alertmanager /bin/alertmanager
COPY root/usr/bin/amtool /bin/amtool
COPY root/usr/share/prometheus/alertmanager /usr/share/prometheus/alertmanager
RUN mkdir -p /etc/alertmanager /alertmanager && chown 65534:65534 /alertmanager
LABEL org.llmstack.standin="alertmanager"
USER 65534:65534
EXPOSE 9093
VOLUME ["/alertmanager"]
WORKDIR /alertmanager
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]

FROM common AS blackbox-exporter
COPY root/usr/bin/prometheus-blackbox-exporter /bin/blackbox_exporter
RUN mkdir -p /etc/blackbox_exporter
LABEL org.llmstack.standin="blackbox-exporter"
USER 65534:65534
EXPOSE 9115
ENTRYPOINT ["/bin/blackbox_exporter"]
CMD ["--config.file=/etc/blackbox_exporter/config.yml"]
