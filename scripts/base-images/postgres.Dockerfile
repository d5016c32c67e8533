# PostgreSQL 15 from Debian's packages on the locally built Debian base, tagged unlearn-base/postgres:bookworm.
# It takes the settings the compose file gives the public postgres image: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, data in /var/lib/postgresql/data, `pg_isready` on the path.
# Unpinned packages: the image takes the suite's current ones when it is built (a check, not a release).
# A user name: the uid is whatever the package gave it in this image, which chowned its folders by that name.
# hadolint global ignore=DL3008,DL3066
ARG BASE_IMAGE=unlearn-base/debian:bookworm
FROM ${BASE_IMAGE}
ENV LANG=C.UTF-8 \
    PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
# The package creates a cluster "main" under /etc and /var/lib/postgresql/15; the entrypoint makes its own.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && pg_dropcluster 15 main \
 && mkdir -p "$PGDATA" /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 "$PGDATA"
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
