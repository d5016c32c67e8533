# Python 3.11 from Debian's packages on the locally built Debian base: a stand-in for python:3.11-slim-bookworm
# (a `python` command, the venv module with pip, CA certificates), tagged unlearn-base/python:bookworm.
# Unpinned packages: the image takes the suite's current ones when it is built (a check, not a release).
# hadolint global ignore=DL3008
ARG BASE_IMAGE=unlearn-base/debian:bookworm
FROM ${BASE_IMAGE}
ENV LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["python"]
