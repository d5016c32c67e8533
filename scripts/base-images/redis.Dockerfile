# Redis from Debian's packages on the locally built Debian base, tagged unlearn-base/redis:bookworm.
# Like the public redis image: runs as user redis in /data, and `redis-server` accepts connections from other
# containers (protected mode off; the port is reachable only on the compose network).
# Unpinned packages: the image takes the suite's current ones when it is built (a check, not a release).
# A user name: the uid is whatever the package gave it in this image, which chowned its folders by that name.
# hadolint global ignore=DL3008,DL3066
ARG BASE_IMAGE=unlearn-base/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["redis-entrypoint.sh"]
CMD ["redis-server"]
