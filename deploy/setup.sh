#!/usr/bin/env bash
# Prepares this machine to build and test `jobs`: PostgreSQL, RabbitMQ,
# Docker and the busybox test image. Safe to run again: every step checks
# first and does nothing when its service is already there. Run as root.
#
# What it guarantees when it exits 0:
# - PostgreSQL answers on 127.0.0.1:5432, with a superuser `jobs`/`jobs`
#   (the end-to-end tests create and drop one database per test);
# - RabbitMQ answers on 127.0.0.1:5672 with the default guest/guest user;
# - an S3-compatible server (moto) answers on 127.0.0.1:9000, any bucket
#   created by an unsigned PUT, credentials test/test (the end-to-end tests
#   of uploads and artifacts create one bucket per test);
# - `docker info` works;
# - the image `jobs-test/busybox:latest` exists (deploy/build-test-image.sh);
# - Debian's chromium is at /usr/bin/chromium and tests/browser has its npm
#   packages (playwright-core, exactly as its package-lock.json pins), for
#   the web console's browser tests (tests/tests/console.rs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "setup: $*"; }
die() {
    echo "setup: error: $*" >&2
    exit 1
}

# Runs "$@" until it succeeds, every half second, for at most $1 seconds.
wait_until() {
    local what="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
    log "$what is up"
}

[[ "$(id -u)" == 0 ]] || die "run me as root (I install packages and start services)"

# `--docker-only`: just Docker and the test image, which is all `jobs dev`
# needs (deploy/dev-quickstart.sh).
docker_only=false
[[ "${1:-}" == "--docker-only" ]] && docker_only=true

# --- packages ---------------------------------------------------------------
packages=(docker.io busybox-static)
$docker_only || packages+=(postgresql rabbitmq-server python3-venv chromium)
# The multi-host test's network namespaces, veth pairs and bridge (ip), and
# its FORWARD rule past dockerd's DROP policy (iptables).
$docker_only || packages+=(iproute2 iptables)
# The shells the CLI's integration is tested in (bash and dash come with
# Debian), and man for its pages.
$docker_only || packages+=(zsh fish man-db)
# Node for the browser tests: Debian's only when there is none, since a
# Node from elsewhere (NodeSource, which bundles npm) conflicts with it.
if ! $docker_only; then
    command -v node >/dev/null || packages+=(nodejs)
    command -v npm >/dev/null || packages+=(npm)
fi
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
# The docker.io package brings its own client; a separately installed
# client (docker-ce-cli) is fine too.
if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v docker >/dev/null || die "no docker client on PATH after installing docker.io"

if ! $docker_only; then
# --- PostgreSQL -------------------------------------------------------------
pg_version="${PG_VERSION:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)}"
[[ -n "$pg_version" ]] || die "no PostgreSQL cluster under /etc/postgresql"
if ! pg_ctlcluster "$pg_version" main status >/dev/null 2>&1; then
    log "starting PostgreSQL $pg_version"
    pg_ctlcluster "$pg_version" main start
fi
wait_until "PostgreSQL" 60 pg_isready -q -h 127.0.0.1 -p 5432 ||
    die "PostgreSQL $pg_version does not answer on 127.0.0.1:5432; see /var/log/postgresql/postgresql-$pg_version-main.log"

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
if [[ "$(psql_admin -Atc "select 1 from pg_roles where rolname = 'jobs'")" != "1" ]]; then
    log "creating the PostgreSQL superuser role jobs"
    psql_admin -c "create role jobs with login superuser password 'jobs'"
fi
PGPASSWORD=jobs psql -X -q -h 127.0.0.1 -U jobs -d postgres -Atc 'select 1' >/dev/null ||
    die "cannot log in to PostgreSQL as jobs/jobs on 127.0.0.1 (check pg_hba.conf and the role's password)"

# --- RabbitMQ ---------------------------------------------------------------
rabbit_ping() { rabbitmq-diagnostics -q ping; }
if ! rabbit_ping >/dev/null 2>&1; then
    # A node that is still booting fails the ping too: start one only when
    # no RabbitMQ (Erlang) node runs at all.
    if ! pgrep -u rabbitmq -f 'beam.*rabbit' >/dev/null; then
        log "starting RabbitMQ"
        rabbitmq-server -detached
    fi
    wait_until "RabbitMQ" 120 rabbit_ping ||
        die "RabbitMQ does not answer rabbitmq-diagnostics ping; see /var/log/rabbitmq/"
fi
wait_until "RabbitMQ AMQP port" 30 bash -c '</dev/tcp/127.0.0.1/5672' ||
    die "RabbitMQ does not listen on 127.0.0.1:5672"

# --- S3 (moto) --------------------------------------------------------------
# moto's server is a real S3 protocol endpoint (multipart uploads, signed
# requests) in one Python process: the tests use it as the S3 of uploads and
# artifacts. It keeps objects in memory, which the tests' 1 GiB upload fits.
moto_venv=/opt/jobs-moto
moto_ping() { curl -fsS -o /dev/null http://127.0.0.1:9000/moto-api/ 2>/dev/null || bash -c '</dev/tcp/127.0.0.1/9000' 2>/dev/null; }
if [[ ! -x "$moto_venv/bin/moto_server" ]]; then
    log "installing moto[server] into $moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q 'moto[server]>=5,<6'
fi
if ! moto_ping; then
    log "starting moto on 127.0.0.1:9000, logs in /var/log/jobs-moto.log"
    setsid nohup "$moto_venv/bin/moto_server" -H 127.0.0.1 -p 9000 >>/var/log/jobs-moto.log 2>&1 </dev/null &
    wait_until "moto (S3)" 60 moto_ping ||
        die "moto does not answer on 127.0.0.1:9000; see /var/log/jobs-moto.log"
fi

fi

# --- Docker -----------------------------------------------------------------
# Each app's jobs run on a network of their own (docs/security.md); Docker's
# default address pools hold about 30 at once, so a host without its own
# daemon.json gets 256 /24s. Read by a dockerd started after this.
if [[ ! -e /etc/docker/daemon.json ]]; then
    mkdir -p /etc/docker
    printf '%s\n' '{"default-address-pools": [{"base": "10.213.0.0/16", "size": 24}]}' \
        >/etc/docker/daemon.json
fi
if ! docker info >/dev/null 2>&1; then
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        log "starting docker with systemctl"
        systemctl start docker
    elif ! pgrep -x dockerd >/dev/null; then
        # A dockerd that was killed leaves its pid files behind; a new one
        # refuses to start if such a pid now belongs to another process.
        if ! pgrep -x containerd >/dev/null; then
            rm -f /var/run/docker/containerd/containerd.pid
        fi
        rm -f /var/run/docker.pid
        log "starting dockerd, logs in /var/log/dockerd.log"
        setsid nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
    fi
    wait_until "Docker" 60 docker info ||
        die "dockerd does not answer 'docker info'; see /var/log/dockerd.log"
fi

# --- browser tests ------------------------------------------------------------
# playwright-core drives Debian's chromium; it downloads no browser of its
# own. `npm ci` installs exactly the lock file, and only when it changed.
if ! $docker_only; then
    browser_dir="$here/../tests/browser"
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    ((node_major >= 20)) || die "the browser tests need Node 20 or newer, found $(node --version)"
    # Whether node_modules holds every package of the lock at its version.
    installed_as_locked() {
        (cd "$browser_dir" && node -e '
            const fs = require("fs");
            const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
            for (const [path, pkg] of Object.entries(lock.packages)) {
                if (!path) continue;
                const file = `${path}/package.json`;
                if (!fs.existsSync(file) || JSON.parse(fs.readFileSync(file, "utf8")).version !== pkg.version) process.exit(1);
            }')
    }
    if ! installed_as_locked; then
        log "installing the npm packages of tests/browser (npm ci)"
        (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    [[ -x /usr/bin/chromium ]] || die "no /usr/bin/chromium after installing the chromium package"
fi

# --- test image -------------------------------------------------------------
bash "$here/build-test-image.sh"
log "ready"
