#!/usr/bin/env bash
# `orderhub ARGS...` = `flask --app wsgi ARGS...` as the services run it: as the orderhub user,
# in /opt/orderhub, with the settings in /etc/orderhub/orderhub.env. deploy/install.sh installs
# it as /usr/local/bin/orderhub. Examples (as root or orderhub):
#   orderhub db upgrade          orderhub dispatch --once        orderhub suppliers check
#   orderhub db backup /var/lib/orderhub/backups                 orderhub po resend PO_ID
set -euo pipefail

APP=${ORDERHUB_APP_DIR:-/opt/orderhub}
ENV_FILE=${ORDERHUB_ENV_FILE:-/etc/orderhub/orderhub.env}
command=(env "ORDERHUB_ENV_FILE=$ENV_FILE" FLASK_SKIP_DOTENV=1
         "$APP/.venv/bin/flask" --app wsgi "$@")

cd "$APP"
# Files it creates (a new SQLite database, backups) are for orderhub alone, as under systemd.
umask 077
if [ "$(id -un)" = orderhub ]; then
  exec "${command[@]}"
elif [ "$(id -u)" = 0 ]; then
  exec runuser -u orderhub -- "${command[@]}"
else
  echo "orderhub: run as root (sudo orderhub $*) or as the orderhub user" >&2
  exit 2
fi
