#!/usr/bin/env bash
# Create the platform's databases, owned by $POSTGRES_USER, if they do not exist yet.
#
# The postgres image runs this once, on an empty data directory, from
# /docker-entrypoint-initdb.d (docker-compose.yml mounts it there); the native test stack
# (tests/services/stack.py) and infra/k8s/postgres.yaml run the same file. psql reads the
# connection from the usual PGHOST / PGPORT variables (the image's entrypoint uses the socket).
#   mlflow   MLflow tracking backend (runs, params, metrics, model registry)
#   optuna   Optuna storage (studies and trials of every sweep)
set -euo pipefail
: "${POSTGRES_USER:?POSTGRES_USER must name the owner of the databases}"
databases="${DMLSWEEP_DATABASES:-mlflow optuna}"

for db in $databases; do
  # format(%I) quotes the names; \gexec runs the statement only when the SELECT returns it.
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname postgres \
    -v db="$db" -v owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
  echo "init-databases: database $db ready"
done
