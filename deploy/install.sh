#!/usr/bin/env bash
# Install OrderHub on a Debian/Ubuntu server, or bring an installation up to this checkout:
#
#     sudo deploy/install.sh DOMAIN [EMAIL]
#
# DOMAIN is the name the server answers to (its DNS must point here for certbot). With EMAIL,
# certbot gets a Let's Encrypt certificate for DOMAIN (and renews it on its own timer); without,
# nginx serves a self-signed stand-in until you run the script again with EMAIL.
#
# Safe to run again, and that is how to upgrade (deploy/README.md): /opt/orderhub is replaced by
# this checkout (its .venv is kept), requirements are installed, the database is migrated, the
# units and the nginx site are rewritten, and the web process and the dispatcher restart.
# Never touched once they exist: /etc/orderhub/orderhub.env (settings and secrets),
# /etc/orderhub/suppliers.toml, and the data in /var/lib/orderhub.
#
# To try it without changing the system:
#     ORDERHUB_INSTALL_ROOT=/tmp/try ORDERHUB_INSTALL_DRY=1 deploy/install.sh shop.example.com
# writes every file under /tmp/try and prints, without running them, the commands that would
# change the system (apt-get, useradd, chown, pip, migrations, systemctl, nginx, certbot).
set -euo pipefail

APP=/opt/orderhub
DATA=/var/lib/orderhub
CONF=/etc/orderhub
ENV_FILE=$CONF/orderhub.env
SUPPLIERS_FILE=$CONF/suppliers.toml
UNIT_DIR=/etc/systemd/system
SITE=/etc/nginx/sites-available/orderhub.conf
SITE_LINK=/etc/nginx/sites-enabled/orderhub.conf
WEBROOT=/var/www/letsencrypt
PLACEHOLDER=orderhub.example.com
PACKAGES=(python3 python3-venv nginx certbot python3-certbot-nginx sqlite3 openssl)

ROOT=${ORDERHUB_INSTALL_ROOT:-}
DRY=${ORDERHUB_INSTALL_DRY:-0}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 2; }
dry() { [ "$DRY" = 1 ]; }
# Commands that change the system outside ROOT: run them, or in a dry run only show them.
run() {
  if dry; then
    printf '    (dry run, not run:)'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
DOMAIN=$1
EMAIL=${2:-}
[[ $DOMAIN =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$ ]] ||
  die "$DOMAIN is not a domain name (e.g. orders.example.com)"
[ -z "$EMAIL" ] || [[ $EMAIL =~ ^[^[:space:]@]+@[^[:space:]@]+\.[^[:space:]@]+$ ]] ||
  die "$EMAIL is not an e-mail address"
# The two go together: a dry run writes its files somewhere else, and files written somewhere
# else are no installation.
if [ -n "$ROOT" ] || dry; then
  [ -n "$ROOT" ] || die "ORDERHUB_INSTALL_DRY=1 needs ORDERHUB_INSTALL_ROOT (where to write)"
  dry || die "ORDERHUB_INSTALL_ROOT is for trying the script out: set ORDERHUB_INSTALL_DRY=1 too"
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd -P)
  [ "$ROOT" != / ] || die "ORDERHUB_INSTALL_ROOT=/ is the system itself: run without it"
fi
dry || [ "$(id -u)" = 0 ] || die "run it as root: sudo $0 $*"
if [ ! -f "$SRC/wsgi.py" ] || [ ! -f "$SRC/requirements.txt" ]; then
  die "$SRC does not look like an OrderHub checkout"
fi
LE_DIR=/etc/letsencrypt/live/$DOMAIN

# A folder under ROOT with its mode, and its owner (chown is a system change: needs the user).
make_dir() {  # MODE OWNER:GROUP PATH
  mkdir -p "$ROOT$3"
  chmod "$1" "$ROOT$3"
  run chown "$2" "$ROOT$3"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
      missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "packages: all there"
    return
  fi
  say "packages: installing ${missing[*]}"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

create_user() {
  if id -u orderhub >/dev/null 2>&1; then
    say "user orderhub: exists"
  else
    say "user orderhub: creating (system user, no login shell, home $DATA)"
    run useradd --system --user-group --home-dir "$DATA" --no-create-home \
      --shell /usr/sbin/nologin orderhub
  fi
}

# /opt/orderhub is a copy of this checkout: everything but the virtualenv is replaced, so a
# file deleted from the code (an old module, a migration) is gone there too. Run from
# /opt/orderhub itself (a clone kept up to date with git pull), it is used as it is.
copy_code() {
  local target=$ROOT$APP
  mkdir -p "$target"
  if [ "$SRC" -ef "$target" ]; then
    say "code: running from $APP, using it as it is"
    return
  fi
  say "code: $SRC -> $APP"
  find "$target" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf -- {} +
  tar -C "$SRC" -cf - \
    --exclude=./.git --exclude=./.venv --exclude=./.env --exclude=./var \
    --exclude=./bench/results --exclude=__pycache__ --exclude='*.pyc' \
    --exclude=.pytest_cache --exclude=.mypy_cache --exclude=.ruff_cache \
    --exclude='*.db' --exclude='*.db-wal' --exclude='*.db-shm' . |
    tar -C "$target" --no-same-owner -xf -
  chmod -R u+rwX,go+rX,go-w "$target"
}

install_python() {
  local venv=$APP/.venv
  say "python: virtualenv $venv, requirements.txt"
  if dry || [ ! -x "$venv/bin/python" ]; then
    run python3 -m venv "$venv"
  fi
  run "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$APP/requirements.txt"
  # The services may not write to /opt/orderhub, so compile the bytecode now.
  run "$venv/bin/python" -m compileall -q "$APP/app" "$APP/stock" "$APP/shipment" \
    "$APP/wsgi.py"
}

new_secret() {
  python3 -c 'import secrets; print(secrets.token_urlsafe(32))'
}

# The settings file, made once from .env.example: fresh secrets, the server's paths, and
# TRUST_PROXY=1 (nginx is the only way in). Each KEY=VALUE replaces the example's `KEY=...` or
# commented `# KEY=...` line, or is appended.
write_env_file() {
  local target=$ROOT$ENV_FILE tmp
  if [ -e "$target" ]; then
    say "settings: keeping $ENV_FILE"
  else
    say "settings: writing $ENV_FILE with fresh secrets"
    tmp=$(mktemp "$ROOT$CONF/.orderhub.env.XXXXXX")
    ORDERHUB_SETTINGS="SECRET_KEY=$(new_secret)
ORDERHUB_API_TOKEN=$(new_secret)
DASHBOARD_PASSWORD=$(new_secret)
DATABASE_URL=sqlite:///$DATA/orderhub.db
SUPPLIERS_FILE=$SUPPLIERS_FILE
SHADOW_DIR=$DATA/shadow
TRUST_PROXY=1" awk '
      BEGIN {
        n = split(ENVIRON["ORDERHUB_SETTINGS"], lines, "\n")
        for (i = 1; i <= n; i++) { key = substr(lines[i], 1, index(lines[i], "=") - 1)
                                   keys[i] = key; value[key] = lines[i] }
        print "# OrderHub settings for this server, written by deploy/install.sh from .env.example."
        print "# Read by every orderhub-* unit (EnvironmentFile=) and by `orderhub ...`. After a"
        print "# change: systemctl restart orderhub-web orderhub-dispatch. A bad value stops the"
        print "# start with a message naming the setting (journalctl -u orderhub-web)."
        print ""
      }
      !started && /^[ \t]*$/ { started = 1; next }   # the example intro is about .env
      !started { next }
      {
        line = $0
        sub(/^#[ \t]*/, "", line)
        key = substr(line, 1, index(line, "=") - 1)
        if (key in value && !(key in done)) { print value[key]; done[key] = 1; next }
        print
      }
      END {
        for (i = 1; i <= n; i++) if (!(keys[i] in done)) print value[keys[i]]
      }' "$SRC/.env.example" >"$tmp"
    chmod 0640 "$tmp"
    mv "$tmp" "$target"
  fi
  chmod 0640 "$target"
  run chown root:orderhub "$target"
}

write_suppliers_file() {
  local target=$ROOT$SUPPLIERS_FILE
  if [ -e "$target" ]; then
    say "suppliers: keeping $SUPPLIERS_FILE"
  else
    say "suppliers: writing an empty $SUPPLIERS_FILE (see $APP/suppliers.example.toml)"
    cat >"$target" <<'TOML'
# Your suppliers, one [suppliers.NAME] table each: see /opt/orderhub/suppliers.example.toml.
# Check them with `orderhub suppliers check`, then `systemctl restart orderhub-web
# orderhub-dispatch`. Until a supplier is here, every order line waits for a mapping.
TOML
  fi
  chmod 0640 "$target"
  run chown root:orderhub "$target"
}

install_cli() {
  say "command: /usr/local/bin/orderhub (flask --app wsgi ... as orderhub)"
  mkdir -p "$ROOT/usr/local/bin"
  install -m 0755 "$SRC/deploy/orderhub.sh" "$ROOT/usr/local/bin/orderhub"
}

# Until certbot has a certificate, nginx needs some certificate to start at all (and it must
# start: certbot's challenge is answered on port 80). A self-signed one for DOMAIN stands in.
placeholder_certificate() {
  local dir=$ROOT$CONF/tls
  [ -e "$dir/$DOMAIN.crt" ] && return
  if ! command -v openssl >/dev/null; then
    dry || die "openssl is missing"
    say "tls: no openssl here, no stand-in certificate (dry run)"
    return
  fi
  say "tls: self-signed stand-in certificate for $DOMAIN until certbot has one"
  mkdir -p "$dir"
  chmod 0750 "$dir"
  local out
  if ! out=$(openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$DOMAIN" \
      -addext "subjectAltName=DNS:$DOMAIN" \
      -keyout "$dir/$DOMAIN.key" -out "$dir/$DOMAIN.crt" 2>&1); then
    printf '%s\n' "$out" >&2
    die "could not make a self-signed certificate"
  fi
  chmod 0600 "$dir/$DOMAIN.key"
}

# deploy/nginx/orderhub.conf with the domain filled in, and certbot's certificate if there is
# one, else the stand-in. Returns after `nginx -t` and a reload.
install_site() {
  local certs=(-e "s|/etc/letsencrypt/live/$PLACEHOLDER/|$LE_DIR/|g")
  if [ ! -e "$ROOT$LE_DIR/fullchain.pem" ]; then
    placeholder_certificate
    certs=(-e "s|/etc/letsencrypt/live/$PLACEHOLDER/fullchain.pem|$CONF/tls/$DOMAIN.crt|"
           -e "s|/etc/letsencrypt/live/$PLACEHOLDER/privkey.pem|$CONF/tls/$DOMAIN.key|")
  fi
  say "nginx: site $SITE for $DOMAIN"
  mkdir -p "$ROOT$(dirname "$SITE")" "$ROOT$(dirname "$SITE_LINK")"
  sed "${certs[@]}" -e "s/$PLACEHOLDER/$DOMAIN/g" "$SRC/deploy/nginx/orderhub.conf" \
    >"$ROOT$SITE.tmp"
  chmod 0644 "$ROOT$SITE.tmp"
  mv "$ROOT$SITE.tmp" "$ROOT$SITE"
  ln -sfn ../sites-available/orderhub.conf "$ROOT$SITE_LINK"
  run nginx -t -q
  run systemctl enable --quiet nginx
  run systemctl reload-or-restart nginx
}

install_units() {
  say "systemd: units into $UNIT_DIR"
  mkdir -p "$ROOT$UNIT_DIR"
  local unit
  for unit in "$SRC"/deploy/orderhub-*.service "$SRC"/deploy/orderhub-*.timer \
              "$SRC"/deploy/orderhub-*.socket; do
    install -m 0644 "$unit" "$ROOT$UNIT_DIR/$(basename "$unit")"
  done
  run systemctl daemon-reload
}

database_url() {
  sed -n 's/^[[:space:]]*DATABASE_URL[[:space:]]*=[[:space:]]*//p' "$ROOT$ENV_FILE" |
    tail -n 1 | tr -d "\"'"
}

database_is_sqlite() {
  local url
  url=$(database_url)
  [[ -z $url || $url == sqlite* ]]
}

# An upgrade migrates a database that holds orders: a backup first (SQLite; the same folder and
# rotation as the daily timer), so a migration that goes wrong can be undone.
migrate() {
  local url file
  url=$(database_url)
  if [[ $url == sqlite:///* ]]; then
    file=${url#sqlite:///}
    file=${file%%\?*}
    if [[ $file == /* ]] && [ -e "$ROOT$file" ]; then
      say "database: backup before migrating"
      run "$ROOT/usr/local/bin/orderhub" db backup --keep 14 "$DATA/backups"
    fi
  fi
  say "database: migrating (orderhub db upgrade)"
  run "$ROOT/usr/local/bin/orderhub" db upgrade
}

start_services() {
  say "systemd: enabling and (re)starting the services and timers"
  run systemctl enable --quiet orderhub-web.socket orderhub-web.service orderhub-dispatch.service
  # The socket stays up, so nginx's requests wait while the web process restarts.
  run systemctl start orderhub-web.socket
  run systemctl restart orderhub-web.service orderhub-dispatch.service
  local timer name
  for timer in "$SRC"/deploy/orderhub-*.timer; do
    name=$(basename "$timer")
    if [ "$name" = orderhub-backup.timer ] && ! database_is_sqlite; then
      say "backups: DATABASE_URL is not SQLite, $name stays off (use pg_dump: deploy/README.md)"
      run systemctl disable --now --quiet "$name"
    else
      run systemctl enable --now --quiet "$name"
    fi
  done
}

certificate() {
  if [ -z "$EMAIL" ]; then
    [ -e "$ROOT$LE_DIR/fullchain.pem" ] ||
      say "tls: still self-signed; for Let's Encrypt run: $0 $DOMAIN you@example.com"
    return
  fi
  say "tls: certbot for $DOMAIN (webroot $WEBROOT; renewals reload nginx)"
  run certbot certonly --webroot -w "$WEBROOT" -d "$DOMAIN" --email "$EMAIL" --agree-tos \
    --non-interactive --keep-until-expiring --deploy-hook "systemctl reload nginx"
  if [ -e "$ROOT$LE_DIR/fullchain.pem" ]; then
    install_site
  fi
}

install_packages
create_user
make_dir 0755 root:root "$APP"
make_dir 0750 orderhub:orderhub "$DATA"
make_dir 0700 orderhub:orderhub "$DATA/backups"
make_dir 0750 orderhub:orderhub "$DATA/shadow"
make_dir 0750 root:orderhub "$CONF"
make_dir 0755 root:root "$WEBROOT"
copy_code
install_python
write_env_file
write_suppliers_file
install_cli
install_units
migrate
start_services
install_site
certificate

say "done: https://$DOMAIN/ (dashboard password: grep DASHBOARD_PASSWORD $ENV_FILE; API token: grep ORDERHUB_API_TOKEN $ENV_FILE)"
say "next: suppliers in $SUPPLIERS_FILE, channel secrets in $ENV_FILE, then"
say "      systemctl restart orderhub-web orderhub-dispatch   (deploy/README.md: going live)"
