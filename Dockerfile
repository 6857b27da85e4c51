# avstation scan station image. Not built in CI (no Docker engine there).
# docker build -t avstation .
# docker run -v /etc/avstation:/etc/avstation:ro --tmpfs /var/spool/avstation:uid=65532,mode=0700 \
#   -v avstation-state:/var/lib/avstation avstation
# The job records (records_dir's default, /var/lib/avstation/records) go to
# the avstation-state volume, which Docker fills from the image's 0700
# directory owned by nonroot on first use.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/ ./cmd/avstation ./cmd/avmilter
# The state directories (records_dir's and activity_dir's defaults live in
# them), writable by nonroot: distroless has no shell to make them later.
RUN mkdir -p /state/avstation /state/avmilter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/avstation /out/avmilter /usr/local/bin/
COPY --from=build --chown=65532:65532 --chmod=0700 /state/avstation /var/lib/avstation
COPY --from=build --chown=65532:65532 --chmod=0700 /state/avmilter /var/lib/avmilter
VOLUME /var/lib/avstation
USER nonroot:nonroot
EXPOSE 7358
ENTRYPOINT ["/usr/local/bin/avstation"]
CMD ["-config", "/etc/avstation/avstation.yaml"]
