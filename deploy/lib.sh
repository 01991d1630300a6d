# shellcheck shell=bash
# Helpers shared by install.sh, update.sh and uninstall.sh. Sourced, never run on its own.
# The variables below are used by the scripts that source this file.
# shellcheck disable=SC2034

readonly UNIT_NAME="tinyllama-edge.service"
readonly SERVICE_USER="tinyllama-edge"
readonly SERVICE_GROUP="tinyllama-edge"

# Where things live on the installed system. With --prefix DIR every file goes under DIR
# instead of /, but the files keep naming these paths (DIR is a staging root, like DESTDIR).
readonly APP_PATH="/opt/tinyllama-edge"
readonly CONFIG_PATH="/etc/tinyllama-edge"
readonly STATE_PATH="/var/lib/tinyllama-edge"
readonly UNIT_PATH="/etc/systemd/system"
readonly BIN_PATH="/usr/local/bin/tinyllama-edge"
readonly NODE_DEFAULT="/usr/bin/node"
# First line of the command wrapper: uninstall.sh only removes a file that carries it.
readonly WRAPPER_MARKER="# tinyllama-edge command wrapper (written by deploy/install.sh)"

DRY_RUN=0
PREFIX=""
CURRENT_STEP=""

step() {
  CURRENT_STEP="$*"
  printf '\n==> %s\n' "$*"
}
info() { printf '    %s\n' "$*"; }
skip() { printf '    skipped: %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

quote_command() {
  local out="" arg
  for arg in "$@"; do
    out+="${out:+ }$(printf '%q' "$arg")"
  done
  printf '%s' "$out"
}

# Runs a command and shows it; under --dry-run only shows it.
run() {
  if ((DRY_RUN)); then
    printf '    [dry-run] %s\n' "$(quote_command "$@")"
    return 0
  fi
  printf '    $ %s\n' "$(quote_command "$@")"
  "$@"
}

# run, inside a directory.
run_in() {
  local dir="$1"
  shift
  if ((DRY_RUN)); then
    printf '    [dry-run] (cd %q && %s)\n' "$dir" "$(quote_command "$@")"
    return 0
  fi
  printf '    $ (cd %q && %s)\n' "$dir" "$(quote_command "$@")"
  (cd "$dir" && "$@")
}

# Writes stdin to a file with a mode; under --dry-run only says so.
write_file() {
  local path="$1" mode="$2" tmp
  if ((DRY_RUN)); then
    printf '    [dry-run] write %s (mode %s)\n' "$path" "$mode"
    cat >/dev/null
    return 0
  fi
  printf '    write %s (mode %s)\n' "$path" "$mode"
  tmp="$(mktemp "$path.XXXXXX")"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

# Sets PREFIX from --prefix and every derived path.
set_prefix() {
  local dir="$1"
  [[ -n "$dir" ]] || die "--prefix needs a directory"
  # Absolute, without a trailing slash; "/" means the real system.
  dir="$(realpath -m -- "$dir")"
  if [[ "$dir" == "/" ]]; then
    PREFIX=""
  else
    PREFIX="$dir"
  fi
}

derive_paths() {
  APP_DIR="$PREFIX$APP_PATH"
  CONFIG_DIR="$PREFIX$CONFIG_PATH"
  CONFIG_FILE="$CONFIG_DIR/config.json"
  STATE_DIR="$PREFIX$STATE_PATH"
  MODELS_DIR="$STATE_DIR/models"
  UNIT_DIR="$PREFIX$UNIT_PATH"
  UNIT_FILE="$UNIT_DIR/$UNIT_NAME"
  DROPIN_DIR="$UNIT_DIR/$UNIT_NAME.d"
  BIN_FILE="$PREFIX$BIN_PATH"
}

# Why systemctl is not used, or nothing when it is.
why_no_systemctl() {
  if [[ -n "$PREFIX" ]]; then
    printf -- '--prefix installs into %s, not into the running system' "$PREFIX"
  elif ! command -v systemctl >/dev/null 2>&1; then
    printf 'systemctl is not available on this machine'
  elif [[ ! -d /run/systemd/system ]]; then
    printf 'systemd is not running on this machine (container or chroot?)'
  fi
}

can_use_systemctl() { [[ -z "$(why_no_systemctl)" ]]; }

# The options every script takes. Sets CONSUMED to the number of arguments used (0: not one of them).
common_option() {
  CONSUMED=1
  case "$1" in
  --dry-run) DRY_RUN=1 ;;
  --prefix)
    (($# >= 2)) || die "--prefix needs a directory"
    set_prefix "$2"
    CONSUMED=2
    ;;
  --prefix=*) set_prefix "${1#*=}" ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) CONSUMED=0 ;;
  esac
}

# After the options: the paths, the error trap and, on a dry run, the notice.
begin_run() {
  derive_paths
  trap on_error ERR
  if ((DRY_RUN)); then
    echo "Dry run: nothing is changed; every step shows what it would do."
  fi
}

# Changing the real system needs root; --prefix and --dry-run do not.
require_root_for_system_changes() {
  if [[ -z "$PREFIX" ]] && ((!DRY_RUN)) && ((EUID != 0)); then
    die "installing into the system needs root: run it with sudo (or use --dry-run / --prefix DIR)"
  fi
}

on_error() {
  local status=$?
  printf '\nerror: failed during "%s" (exit status %s)\n' "$CURRENT_STEP" "$status" >&2
  exit "$status"
}
