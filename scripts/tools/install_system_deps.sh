#!/usr/bin/env bash
# Install the Debian packages Genre Monitor needs, if missing.
#   install_system_deps.sh run    PortAudio and ffmpeg (to run the app)
#   install_system_deps.sh test   plus PulseAudio, Chromium, PostgreSQL, Redis and espeak-ng (to run the tests;
#                                 espeak-ng speaks the talk the content tests classify)
# Without root (and without passwordless sudo) it only says what is missing.
set -euo pipefail

want=(libportaudio2 ffmpeg libsndfile1)
if [[ "${1:-run}" == "test" ]]; then
  want+=(pulseaudio pulseaudio-utils libasound2-plugins chromium postgresql redis-server espeak-ng)
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "Missing system packages (no apt-get here): ${missing[*]}" >&2
  exit 0
fi
echo "Installing system packages: ${missing[*]}"
"${SUDO[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
