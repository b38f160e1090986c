#!/bin/sh
# Runs once, on the first start of an empty PostgreSQL data directory (docker-entrypoint-initdb.d).
# One database per govhub process, each owned by a role of its own, so that no process can read
# another's data: govhub_identity, govhub_residence, govhub_permits and govhub_gateway.
# The roles' password is DB_PASSWORD in the environment of the PostgreSQL container
# (compose: the DB_PASSWORD variable; Kubernetes development overlay: the postgres-credentials Secret).
set -eu

: "${DB_PASSWORD:?DB_PASSWORD must be set for the PostgreSQL container}"

for name in identity residence permits gateway; do
  psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="govhub_$name" -v password="$DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
