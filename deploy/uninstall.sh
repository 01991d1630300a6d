#!/usr/bin/env bash
# Removes the tinyllama-edge service and application. The configuration and the downloaded
# models stay (a reinstall picks them up) unless --purge is given.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<EOF
Usage: uninstall.sh [options]

Stops and disables $UNIT_NAME, removes the unit, the command $BIN_PATH
and the application $APP_PATH. Keeps $CONFIG_PATH and $STATE_PATH (models).

Options:
  --purge         also remove the node's Home Assistant entities and retained topics
                  from the broker (tinyllama-edge forget), $CONFIG_PATH,
                  $STATE_PATH (models included), the unit's drop-in overrides and
                  the system user $SERVICE_USER
  --dry-run       show every step, change nothing
  --prefix DIR    remove the files of an install made with install.sh --prefix DIR
  -h, --help      this help
EOF
}

PURGE=0
while (($#)); do
  common_option "$@"
  if ((CONSUMED)); then
    shift "$CONSUMED"
    continue
  fi
  case "$1" in
  --purge) PURGE=1 ;;
  *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

begin_run
require_root_for_system_changes

step "Stopping and disabling $UNIT_NAME"
if ! can_use_systemctl; then
  skip "$(why_no_systemctl)"
elif systemctl cat "$UNIT_NAME" >/dev/null 2>&1; then
  run systemctl disable --now "$UNIT_NAME"
else
  info "$UNIT_NAME is not installed"
fi

if ((PURGE)); then
  step "Removing the node's Home Assistant entities and retained state from the broker"
  if [[ -x "$BIN_FILE" && -f "$CONFIG_FILE" ]]; then
    # The broker password may live in the service's environment file, which the unit reads.
    if ! run bash -c 'set -a; [[ -r "$1" ]] && . "$1"; set +a; exec "$2" forget --config "$3"' forget \
      "$CONFIG_DIR/environment" "$BIN_FILE" "$CONFIG_FILE"; then
      warn "could not reach the broker: delete the device in Home Assistant, or run tinyllama-edge forget before uninstalling"
    fi
  else
    info "no installed command and configuration: nothing to remove from the broker"
  fi
fi

step "Removing the unit $UNIT_FILE"
run rm -f "$UNIT_FILE"
if ((PURGE)); then
  run rm -rf "$DROPIN_DIR"
elif [[ -d "$DROPIN_DIR" ]]; then
  info "kept the local overrides in $DROPIN_DIR (--purge removes them)"
fi
if can_use_systemctl; then
  run systemctl daemon-reload
  run systemctl reset-failed "$UNIT_NAME" 2>/dev/null || true
else
  skip "systemctl daemon-reload: $(why_no_systemctl)"
fi

step "Removing the command $BIN_FILE"
if [[ ! -e "$BIN_FILE" ]]; then
  info "not installed"
elif grep -qxF "$WRAPPER_MARKER" "$BIN_FILE"; then
  run rm -f "$BIN_FILE"
else
  warn "$BIN_FILE was not written by install.sh: left alone"
fi

step "Removing the application $APP_DIR"
run rm -rf "${APP_DIR:?}"

step "Configuration and models"
if ((PURGE)); then
  run rm -rf "${CONFIG_DIR:?}" "${STATE_DIR:?}"
  if [[ -n "$PREFIX" ]]; then
    skip "--prefix: no system user to remove"
  elif getent passwd "$SERVICE_USER" >/dev/null; then
    run userdel "$SERVICE_USER"
  else
    info "user $SERVICE_USER does not exist"
  fi
else
  info "kept $CONFIG_DIR and $STATE_DIR (models); --purge removes them"
fi

step "Done"
if ((DRY_RUN)); then
  info "dry run: nothing was changed"
fi
