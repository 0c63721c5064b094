# The acoustic-env image for KubeRay (cluster/kuberay/): the official Ray image of the pinned Ray
# version with the project installed by cluster/install.sh. Two variants from one file:
#   docker build --build-arg VARIANT=cpu -t <image>:<tag> .
#   docker build --build-arg VARIANT=gpu -t <image>:<tag>-gpu .
# (<image> and <tag>: cluster/kuberay/kustomization.yaml, the one place the manifests take them from.)
ARG RAY_VERSION=2.60.0
ARG VARIANT=cpu
FROM rayproject/ray:${RAY_VERSION}-py311-${VARIANT}
ARG VARIANT
ENV PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY --chown=ray:users . /app
RUN bash cluster/install.sh "${VARIANT}"
