#!/usr/bin/env bash
# Updates an installed tinyllama-edge to the version in a project checkout: stops the service,
# reinstalls the application with install.sh (the model and the configuration are kept), and
# starts it again.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<EOF
Usage: update.sh [options]

  1. stops $UNIT_NAME
  2. runs install.sh --no-pull --no-start from the source: new application and
     dependencies, unit reinstalled; configuration and models kept
  3. starts $UNIT_NAME again

Options:
  --source DIR    the new version's checkout (default: $(dirname "$SCRIPT_DIR"))
  --no-start      leave the service stopped afterwards
  --dry-run       show every step, change nothing
  --prefix DIR    update an install made with install.sh --prefix DIR (no systemctl)
  -h, --help      this help
EOF
}

SOURCE="$(dirname "$SCRIPT_DIR")"
START=1
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
  *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

begin_run

require_root_for_system_changes
[[ -d "$SOURCE" ]] || die "source directory $SOURCE does not exist"
SOURCE="$(cd "$SOURCE" && pwd)"
# The new version's installer, so that its own install steps apply.
INSTALLER="$SOURCE/deploy/install.sh"
[[ -f "$INSTALLER" ]] || INSTALLER="$SCRIPT_DIR/install.sh"
[[ -e "$APP_DIR/package.json" ]] || ((DRY_RUN)) ||
  warn "no installed copy in $APP_DIR: this becomes a fresh install (without the model download)"

step "Stopping $UNIT_NAME"
if ! can_use_systemctl; then
  skip "$(why_no_systemctl)"
elif systemctl is-active --quiet "$UNIT_NAME"; then
  run systemctl stop "$UNIT_NAME"
else
  info "$UNIT_NAME is not running"
fi

step "Installing the new version from $SOURCE"
INSTALL_ARGS=(--no-pull --no-start --source "$SOURCE")
if [[ -n "$PREFIX" ]]; then
  INSTALL_ARGS+=(--prefix "$PREFIX")
fi
if ((DRY_RUN)); then
  INSTALL_ARGS+=(--dry-run)
fi
info "$(quote_command bash "$INSTALLER" "${INSTALL_ARGS[@]}")"
if ! bash "$INSTALLER" "${INSTALL_ARGS[@]}"; then
  die "install.sh failed and $UNIT_NAME is stopped: fix the problem and run update.sh again"
fi

step "Starting $UNIT_NAME"
if ((!START)); then
  skip "--no-start: start it with: sudo systemctl start $UNIT_NAME"
elif ! can_use_systemctl; then
  skip "$(why_no_systemctl)"
else
  # Type=notify: waits until the daemon reports READY=1.
  run systemctl start "$UNIT_NAME" || die "$UNIT_NAME did not start: see journalctl -u $UNIT_NAME -e"
fi

step "Done"
if ((DRY_RUN)); then
  info "dry run: nothing was changed"
fi
