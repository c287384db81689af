#!/usr/bin/env bash
# deps.sh [GROUP...]: make sure the Debian packages axon needs are installed.
# As root, missing packages are installed with apt-get; otherwise the exact
# apt-get line is printed and the script fails.  Groups: build test fuzz bench windows.
set -u
declare -A PKGS=(
  [build]="build-essential cmake pkg-config libc-ares-dev libssl-dev libsqlite3-dev libjansson-dev zlib1g-dev liburing-dev libhiredis-dev nodejs npm libavformat-dev libavcodec-dev libavutil-dev"
  [test]="netcat-openbsd socat curl wrk openssl procps python3 psmisc iproute2 strace clang-format nginx libnginx-mod-nchan python3-websockets nodejs npm chromium mosquitto mosquitto-clients python3-paho-mqtt libpaho-mqtt-dev tmux irssi weechat-headless redis-server swaks lftp asciinema ffmpeg vlc-bin vlc-plugin-base"
  [fuzz]="clang libclang-rt-14-dev"
  [bench]="libuv1-dev libevent-dev nginx libnginx-mod-rtmp"
  [windows]="gcc-mingw-w64-x86-64 libz-mingw-w64-dev wine wine64 libgnutls30"
)
groups=${*:-build}
missing=()
for g in $groups; do
  for p in ${PKGS[$g]}; do
    # npm also comes inside nodesource's nodejs, which conflicts with Debian's npm
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    [ "$p" = nodejs ] && command -v node >/dev/null && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "axon: missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "axon: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null; } ||
  { echo "axon: apt-get install ${missing[*]} failed" >&2; exit 1; }
