#!/usr/bin/env bash
# Installs tinyllama-edge as a systemd service (Raspberry Pi OS, Debian, Ubuntu, ...).
# Safe to run again: it updates the application and keeps the configuration and the models.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<EOF
Usage: install.sh [options]

Installs tinyllama-edge from a project checkout:
  the application into $APP_PATH (production dependencies only),
  the configuration into $CONFIG_PATH/config.json (never overwritten),
  models and state into $STATE_PATH, the unit into $UNIT_PATH/$UNIT_NAME,
  the command $BIN_PATH; then detects the hardware, downloads the
  model that suits it, and enables and starts the service.

Options:
  --dry-run       show every step, change nothing
  --prefix DIR    install every file under DIR instead of / (no user, no systemctl)
  --source DIR    project checkout to install from (default: $(dirname "$SCRIPT_DIR"))
  --no-start      do not enable or start the service
  --no-pull       do not download the model now
  --native        compile llama.cpp for this CPU (tinyllama-edge build: minutes; needs cmake,
                  g++ and make); the service then loads it instead of the prebuilt binary
  --board DIR     with --dry-run: name the model file for the board recorded in DIR
                  (test/fixtures/hardware/*) instead of this machine
  -h, --help      this help
EOF
}

SOURCE="$(dirname "$SCRIPT_DIR")"
START=1
PULL=1
NATIVE=0
BOARD=""

while (($#)); do
  common_option "$@"
  if ((CONSUMED)); then
    shift "$CONSUMED"
    continue
  fi
  case "$1" in
  --source)
    (($# >= 2)) || die "--source needs a directory"
    SOURCE="$2"
    shift
    ;;
  --source=*) SOURCE="${1#*=}" ;;
  --no-start) START=0 ;;
  --no-pull) PULL=0 ;;
  --native) NATIVE=1 ;;
  --board)
    (($# >= 2)) || die "--board needs a directory"
    BOARD="$2"
    shift
    ;;
  --board=*) BOARD="${1#*=}" ;;
  *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

begin_run
# Everything installed is readable by the service user; secrets get their own modes.
umask 022

if [[ -n "$PREFIX" ]]; then
  echo "Installing under the prefix $PREFIX (files only: no system user, no systemctl)."
fi

# --- Preflight --------------------------------------------------------------------------------
step "Checking Node.js and the architecture"
require_root_for_system_changes
command -v node >/dev/null 2>&1 || die "Node.js is not installed: install Node.js 20 or newer (e.g. from NodeSource) first"
command -v npm >/dev/null 2>&1 || die "npm is not installed: install it with Node.js 20 or newer"
NODE_BIN="$(command -v node)"
# One call to node: version, architecture, ARM version, glibc version ("-" where absent).
# shellcheck disable=SC2016
read -r NODE_VERSION NODE_ARCH NODE_ARM_VERSION NODE_GLIBC < <(
  node -e 'const h = process.report ? process.report.getReport().header : {};
    console.log([process.versions.node, process.arch,
      (process.config.variables || {}).arm_version || "-", h.glibcVersionRuntime || "-"].join(" "))'
) || die "could not run $NODE_BIN"
NODE_MAJOR="${NODE_VERSION%%.*}"
[[ "$NODE_MAJOR" =~ ^[0-9]+$ ]] || die "could not read the Node.js version from $NODE_BIN (got '$NODE_VERSION')"
((NODE_MAJOR >= 20)) || die "Node.js $NODE_VERSION at $NODE_BIN is too old: tinyllama-edge needs Node.js 20 or newer"
info "Node.js $NODE_VERSION at $NODE_BIN"

# node-llama-cpp ships prebuilt binaries for these only, and the device never compiles.
case "$NODE_ARCH" in
x64) ARCH="x64" ;;
arm64) ARCH="arm64" ;;
# 32-bit ARM: node-llama-cpp's linux-armv7l package holds 64-bit binaries, so nothing loads there
# (docs/upstream.md); a 32-bit OS on a 64-bit board (Pi 3, 4, 5, Zero 2) is fixed by the 64-bit OS.
arm)
  if [[ "$NODE_ARM_VERSION" == "7" ]]; then
    die "32-bit ARM (armv7l, e.g. 32-bit Raspberry Pi OS) is not supported: node-llama-cpp has no working armv7l build; install the 64-bit Raspberry Pi OS (arm64) and run install.sh again"
  else
    die "32-bit ARM v$NODE_ARM_VERSION (e.g. Raspberry Pi 1 / Zero W) is not supported: prebuilt inference binaries exist for arm64 and x64 only"
  fi
  ;;
*) die "architecture '$NODE_ARCH' ($(uname -m)) is not supported: prebuilt inference binaries exist for arm64 and x64 only" ;;
esac
[[ "$NODE_GLIBC" != "-" ]] || die "this Node.js is not built on glibc (musl/Alpine?): the prebuilt inference binaries need glibc"
info "architecture $ARCH (machine $(uname -m), glibc $NODE_GLIBC)"

if [[ "$NODE_BIN" == /home/* || "$NODE_BIN" == /root/* ]]; then
  warn "Node.js is installed under a home directory ($NODE_BIN), which the service cannot see (ProtectHome=true): install Node.js system-wide, e.g. from NodeSource."
fi

step "Checking the source $SOURCE"
[[ -d "$SOURCE" ]] || die "source directory $SOURCE does not exist"
SOURCE="$(cd "$SOURCE" && pwd)"
for required in package.json package-lock.json config/production.json systemd/"$UNIT_NAME"; do
  [[ -f "$SOURCE/$required" ]] || die "$SOURCE is not a tinyllama-edge checkout: $required is missing"
done
grep -q '"name": *"tinyllama-edge"' "$SOURCE/package.json" || die "$SOURCE/package.json is not tinyllama-edge's"
info "tinyllama-edge checkout at $SOURCE"

step "Building dist/ in the source"
if [[ -f "$SOURCE/dist/main.js" ]]; then
  info "already built: $SOURCE/dist/main.js"
else
  info "dist/main.js is missing: building it (needs the development dependencies once)"
  # Under sudo, build as the user who owns the checkout, so it does not fill up with root's files.
  BUILD_AS=()
  if ((EUID == 0)) && [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]] && command -v runuser >/dev/null 2>&1 &&
    [[ "$(stat -c %U "$SOURCE")" == "$SUDO_USER" ]]; then
    BUILD_AS=(runuser -u "$SUDO_USER" --)
  fi
  # --ignore-scripts: nothing is compiled here either (node-llama-cpp uses its prebuilt binaries).
  run_in "$SOURCE" "${BUILD_AS[@]}" npm ci --ignore-scripts --no-audit --no-fund
  run_in "$SOURCE" "${BUILD_AS[@]}" npm run build
  if ((!DRY_RUN)); then
    [[ -f "$SOURCE/dist/main.js" ]] || die "the build did not produce $SOURCE/dist/main.js"
  fi
fi

# --- The system user and the directories -----------------------------------------------------
step "Creating the system user $SERVICE_USER"
if [[ -n "$PREFIX" ]]; then
  skip "--prefix: no system user is created; files are owned by $(id -un)"
elif getent passwd "$SERVICE_USER" >/dev/null; then
  info "user $SERVICE_USER exists"
else
  NOLOGIN="$(command -v nologin || echo /usr/sbin/nologin)"
  run useradd --system --user-group --home-dir "$STATE_PATH" --no-create-home \
    --shell "$NOLOGIN" --comment "tinyllama-edge daemon" "$SERVICE_USER"
fi
if [[ -z "$PREFIX" ]]; then
  # video: /dev/vchiq (vcgencmd: throttling) on a Raspberry Pi; render: GPU render nodes.
  for group in video render; do
    if getent group "$group" >/dev/null; then
      if id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$group"; then
        info "$SERVICE_USER is in the group $group"
      else
        run usermod --append --groups "$group" "$SERVICE_USER"
      fi
    fi
  done
fi

step "Creating the directories"
if [[ -n "$PREFIX" ]]; then
  run install -d -m 0755 "$APP_DIR" "$UNIT_DIR" "$(dirname "$BIN_FILE")"
  run install -d -m 0750 "$CONFIG_DIR" "$STATE_DIR" "$MODELS_DIR"
else
  run install -d -m 0755 "$APP_DIR" "$UNIT_DIR" "$(dirname "$BIN_FILE")"
  # The config may hold the MQTT password: root writes it, the service group reads it.
  run install -d -m 0750 -o root -g "$SERVICE_GROUP" "$CONFIG_DIR"
  run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_GROUP" "$STATE_DIR" "$MODELS_DIR"
fi

# --- The application ---------------------------------------------------------------------------
step "Copying the application to $APP_DIR"
if [[ "$SOURCE" == "$APP_DIR" ]]; then
  info "the source is the installed copy itself: nothing to copy"
else
  for item in package.json package-lock.json dist config systemd deploy README.md LICENSE; do
    if [[ -e "$SOURCE/$item" || "$item" == dist ]]; then
      run rm -rf "${APP_DIR:?}/$item"
      run cp -R "$SOURCE/$item" "$APP_DIR/$item"
    fi
  done
fi

step "Installing the production dependencies in $APP_DIR"
# npm ci removes and rebuilds node_modules, which takes a while on a Pi: skip it when
# package-lock.json, Node.js's major version and the architecture are what it was built for.
LOCK_HASH="$(sha256sum "$SOURCE/package-lock.json" | cut -d' ' -f1)"
DEPS_STAMP="$APP_DIR/node_modules/.tinyllama-edge-deps"
DEPS_WANTED="$LOCK_HASH node$NODE_MAJOR $ARCH"
if [[ -f "$DEPS_STAMP" && "$(cat "$DEPS_STAMP")" == "$DEPS_WANTED" ]]; then
  info "up to date: package-lock.json has not changed since the last install"
else
  # --omit=dev: runtime packages only. --ignore-scripts: no install scripts (node-llama-cpp's
  # is denied in package.json too), so nothing is compiled; its prebuilt binary for this
  # architecture comes as an optional package. --prefer-offline: the lockfile pins every
  # version and checksum, so packages already in npm's cache are used without the network.
  run_in "$APP_DIR" npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund
  printf '%s\n' "$DEPS_WANTED" | write_file "$DEPS_STAMP" 0644
fi

step "Compiling llama.cpp for this CPU"
if ((NATIVE)); then
  for tool in cmake g++ make; do
    command -v "$tool" >/dev/null 2>&1 || ((DRY_RUN)) ||
      die "--native needs $tool: sudo apt install cmake g++ make"
  done
  # Into the application's node-llama-cpp (owned by root, like the rest of $APP_DIR).
  run_in "$APP_DIR" "$NODE_BIN" "$APP_DIR/dist/main.js" build
else
  skip "the prebuilt llama.cpp binary is used (--native compiles one for this CPU)"
fi

# --- Configuration, unit, command -------------------------------------------------------------
step "Writing the configuration $CONFIG_FILE"
if [[ -e "$CONFIG_FILE" ]]; then
  info "kept the existing $CONFIG_FILE (never overwritten); the current template is $APP_PATH/config/production.json"
elif [[ -n "$PREFIX" ]]; then
  run install -m 0640 "$SOURCE/config/production.json" "$CONFIG_FILE"
else
  run install -m 0640 -o root -g "$SERVICE_GROUP" "$SOURCE/config/production.json" "$CONFIG_FILE"
fi
info "secrets such as the MQTT password can go into $CONFIG_PATH/environment instead"
info "(TINYLLAMA_EDGE_MQTT_PASSWORD=..., mode 0640 root:$SERVICE_GROUP); see deploy/mosquitto/README.md"

step "Installing the systemd unit $UNIT_FILE"
if [[ "$NODE_BIN" != "$NODE_DEFAULT" ]]; then
  info "Node.js is at $NODE_BIN, not $NODE_DEFAULT: ExecStart is adjusted"
fi
sed "s|^ExecStart=$NODE_DEFAULT |ExecStart=$NODE_BIN |" "$SOURCE/systemd/$UNIT_NAME" | write_file "$UNIT_FILE" 0644
if ! command -v systemd-analyze >/dev/null 2>&1; then
  skip "systemd-analyze is not available: the unit is not verified"
elif ((DRY_RUN)); then
  run systemd-analyze verify "$UNIT_FILE"
else
  # verify prints warnings (unknown keys, ...) but only fails on hard errors: show both.
  run systemd-analyze verify "$UNIT_FILE" || die "systemd-analyze verify rejected $UNIT_FILE"
fi

step "Reloading systemd"
if can_use_systemctl; then
  run systemctl daemon-reload
else
  skip "$(why_no_systemctl)"
fi

step "Installing the command $BIN_FILE"
# NODE_ENV=production: the CLI then reads $CONFIG_PATH/config.json by default, as the service does.
write_file "$BIN_FILE" 0755 <<EOF
#!/bin/sh
$WRAPPER_MARKER
: "\${NODE_ENV:=production}"
: "\${UV_THREADPOOL_SIZE:=1}"
: "\${NODE_OPTIONS:=--max-semi-space-size=2}"
: "\${MALLOC_MMAP_THRESHOLD_:=131072}"
export NODE_ENV UV_THREADPOOL_SIZE NODE_OPTIONS MALLOC_MMAP_THRESHOLD_
exec $NODE_BIN $APP_PATH/dist/main.js "\$@"
EOF

# --- Hardware, model, service ------------------------------------------------------------------
# The CLI runs as the service user, so the downloaded model belongs to it.
CLI=("$NODE_BIN" "$APP_DIR/dist/main.js")
CLI_OPTIONS=(--config "$CONFIG_FILE")
if [[ -n "$PREFIX" ]]; then
  # The config names the real /var/lib paths; keep everything under the prefix.
  CLI_OPTIONS+=(--model.dir "$MODELS_DIR" --state.dir "$STATE_DIR")
fi
run_cli() {
  if [[ -z "$PREFIX" && "$EUID" -eq 0 ]] && command -v runuser >/dev/null 2>&1; then
    run_in "$STATE_DIR" runuser -u "$SERVICE_USER" -- "${CLI[@]}" "$@" "${CLI_OPTIONS[@]}"
  else
    run_in "${STATE_DIR}" "${CLI[@]}" "$@" "${CLI_OPTIONS[@]}"
  fi
}

step "Detecting the hardware"
run_cli detect

# Under --dry-run: the model file `start` will load, named by the same plan (downloads nothing).
preview_model_file() {
  local config="$CONFIG_FILE" file
  [[ -r "$config" ]] || config="$SOURCE/config/production.json"
  if [[ ! -f "$SOURCE/dist/main.js" || ! -d "$SOURCE/node_modules" ]]; then
    info "the model file is named once $SOURCE is built"
    return 0
  fi
  if file="$("$NODE_BIN" "$SOURCE/dist/main.js" pull --dry-run --config "$config" --model.dir "$MODELS_DIR" \
    --log.level warn ${BOARD:+--board "$BOARD"})"; then
    info "model file: $file"
  else
    warn "no model file could be planned (see above)"
  fi
}

step "Downloading the model"
if ((PULL)); then
  if ((DRY_RUN)); then
    preview_model_file
  fi
  # Attached to the terminal: the download shows its progress.
  run_cli pull
else
  skip "--no-pull: download it later with: sudo -u $SERVICE_USER $BIN_PATH pull --config $CONFIG_PATH/config.json"
fi

step "Enabling and starting $UNIT_NAME"
if ((!START)); then
  skip "--no-start: start it later with: sudo systemctl enable --now $UNIT_NAME"
elif ! can_use_systemctl; then
  skip "$(why_no_systemctl)"
else
  run systemctl enable "$UNIT_NAME"
  # restart, not start: a re-run applies the new version. With Type=notify this waits until
  # the daemon reports READY=1.
  run systemctl restart "$UNIT_NAME" ||
    die "$UNIT_NAME did not start: see journalctl -u $UNIT_NAME -e"
  run systemctl --no-pager --lines=0 status "$UNIT_NAME" || true
fi

step "Done"
if ((DRY_RUN)); then
  info "dry run: nothing was changed"
fi
info "application:   $APP_DIR"
info "configuration: $CONFIG_FILE"
info "models, state: $STATE_DIR"
info "unit:          $UNIT_FILE"
info "command:       $BIN_FILE"
info "logs:          journalctl -u $UNIT_NAME -f"
