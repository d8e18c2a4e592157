# One image holds both binaries: the manager, and the detector that training Jobs and
# scoring Deployments run. Build it with `make docker-build` where a Docker engine runs.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The detector links OpenBLAS and oneDNN (cgo) for speed; the manager is pure Go.
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas-dev libdnnl-dev && rm -rf /var/lib/apt/lists/*
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/manager . && \
    CGO_ENABLED=1 go build -trimpath -tags openblas -ldflags "-s -w -X github.com/kadet-dev/kadet/detector/pipeline.Version=${VERSION}" \
      -o /out/detector ./detector/cmd/detector && \
    mkdir -p /out/lib && cp -L /usr/lib/x86_64-linux-gnu/libopenblas.so.0 /usr/lib/x86_64-linux-gnu/libgfortran.so.5 \
      /usr/lib/x86_64-linux-gnu/libquadmath.so.0 /usr/lib/x86_64-linux-gnu/libdnnl.so.2 /usr/lib/x86_64-linux-gnu/libgomp.so.1 \
      /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /out/lib/

# distroless/cc has glibc and libgcc for the cgo detector; it runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/lib/ /usr/lib/x86_64-linux-gnu/
COPY --from=build /out/manager /out/detector /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/manager"]
