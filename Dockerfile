# avstation scan station image. Not built in CI (no Docker engine there).
# docker build -t avstation .
# docker run -v /etc/avstation:/etc/avstation:ro --tmpfs /var/spool/avstation:uid=65532,mode=0700 avstation
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/ ./cmd/avstation ./cmd/avmilter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/avstation /out/avmilter /usr/local/bin/
USER nonroot:nonroot
EXPOSE 7358
ENTRYPOINT ["/usr/local/bin/avstation"]
CMD ["-config", "/etc/avstation/avstation.yaml"]
