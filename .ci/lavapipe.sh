#!/usr/bin/env bash
# Installs Mesa's lavapipe (a software Vulkan driver) so that WebGPU (Dawn, used by the `webgpu`
# npm package, tfjs-backend-webgpu and onnxruntime-node's WebGPU provider) finds an adapter on a
# machine without a GPU. Dawn needs lavapipe from Mesa >= 25; Debian bookworm ships 22.3, so there
# it comes from bookworm-backports.
#
# Idempotent: does nothing when a WebGPU adapter already works (a real GPU, or lavapipe installed
# before). Needs root or passwordless sudo. No environment variables are needed afterwards: the
# Vulkan loader finds /usr/share/vulkan/icd.d/lvp_icd.json by itself.
#
# usage: bash .ci/lavapipe.sh        (from anywhere; run `npm ci` before or after, either works)
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_MESA_MAJOR=25
PACKAGES=(mesa-vulkan-drivers libvulkan1)

log() { echo "lavapipe.sh: $*" >&2; }

# Prints the adapter description and succeeds when Dawn finds an adapter. Returns 2 when the
# check cannot run (no node or no node_modules/webgpu yet, e.g. in CI before `npm ci`).
adapter_works() {
  if ! command -v node >/dev/null 2>&1 || [ ! -d node_modules/webgpu ]; then return 2; fi
  timeout 60 node --input-type=module -e '
    import { create } from "webgpu";
    const adapter = await create([]).requestAdapter();
    if (!adapter) process.exit(1);
    console.log(`${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description || adapter.info.device}`);
    process.exit(0);
  ' 2>/dev/null
}

mesa_major() {
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  case "$v" in
    "install ok installed "*) v=${v##* }; v=${v#*:}; echo "${v%%.*}" ;;
    *) echo 0 ;;
  esac
}

libvulkan_installed() {
  dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed'
}

set +e
desc=$(adapter_works)
status=$?
set -e
if [ "$status" = 0 ]; then
  log "a WebGPU adapter already works ($desc); nothing to do"
  exit 0
fi
if [ "$status" = 2 ] && [ "$(mesa_major)" -ge "$MIN_MESA_MAJOR" ] && libvulkan_installed; then
  log "mesa-vulkan-drivers $(mesa_major).x and libvulkan1 are installed; nothing to do (adapter not checked: node_modules/webgpu is missing)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "no apt-get here: install Mesa >= $MIN_MESA_MAJOR's Vulkan drivers (lavapipe) and the Vulkan loader with your package manager"
  exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    log "needs root (or passwordless sudo) to apt-get install ${PACKAGES[*]}"
    exit 1
  fi
fi

# shellcheck disable=SC1091
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
apt_install=("${SUDO[@]}" apt-get install -y --no-install-recommends)
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports to /etc/apt/sources.list.d/bookworm-backports.list"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' |
      "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  apt_install+=(-t bookworm-backports)
fi
log "apt-get update"
"${SUDO[@]}" apt-get update -qq
log "installing ${PACKAGES[*]}"
"${apt_install[@]}" "${PACKAGES[@]}" >/dev/null

major=$(mesa_major)
if [ "$major" -lt "$MIN_MESA_MAJOR" ]; then
  log "installed mesa-vulkan-drivers is $major.x; Dawn needs >= $MIN_MESA_MAJOR, so WebGPU may find no adapter"
  exit 1
fi
set +e
desc=$(adapter_works)
status=$?
set -e
case "$status" in
  0) log "WebGPU adapter: $desc" ;;
  2) log "mesa-vulkan-drivers $major.x installed; run \`npm ci\` to get the webgpu package, then WebGPU uses lavapipe" ;;
  *) log "mesa-vulkan-drivers $major.x installed, but Dawn still finds no adapter"; exit 1 ;;
esac
