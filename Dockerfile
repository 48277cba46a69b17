# syntax=docker/dockerfile:1
# Multi-stage build: a static frontdoor binary on a minimal base, running as a non-root user that
# may still bind :80 and :443. The build stage runs deploy/build.sh, the same script the test
# suite runs, so this file cannot drift from a working build.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN VERSION=$VERSION COMMIT=$COMMIT deploy/build.sh /out/frontdoor \
 && apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /out/frontdoor \
 && mkdir -p /out/state/certs && chmod 0700 /out/state/certs

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/frontdoor /usr/local/bin/frontdoor
COPY --from=build --chown=65532:65532 /out/state /var/lib/frontdoor
# ACME account and certificates; mount a volume so restarts keep them (and Let's Encrypt's limits).
VOLUME ["/var/lib/frontdoor"]
ENV FRONTDOOR_CERT_CACHE=/var/lib/frontdoor/certs
EXPOSE 80 443 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/frontdoor"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
