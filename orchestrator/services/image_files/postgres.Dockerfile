# orchestrator/postgres:15 -- a real PostgreSQL for the test tier, built offline from the local
# python base (made by `orchestrator images bootstrap`) with Debian's own postgresql package.
# The entrypoint honours POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB like the official image.
ARG BASE_IMAGE=orchestrator/python-base:bookworm
FROM ${BASE_IMAGE}
ARG PG_MAJOR=15
RUN set -eux; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/orchestrator.conf; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}"; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; \
    chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql; \
    chmod 2777 /var/run/postgresql; \
    ln -s "/usr/lib/postgresql/${PG_MAJOR}/bin" /usr/lib/postgresql/bin
ENV PATH=/usr/lib/postgresql/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
RUN chmod 755 /usr/local/bin/postgres-entrypoint.sh
EXPOSE 5432
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=3s --start-period=2s --retries=12 \
    CMD pg_isready -q -h 127.0.0.1 -p 5432 || exit 1
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
