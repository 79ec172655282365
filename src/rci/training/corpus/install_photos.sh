#!/usr/bin/env bash
# Installs the Debian packages the corpus generator takes photos from, when missing (idempotent).
# Packages reserved for held-out evaluation (plasma-workspace-wallpapers, mate-backgrounds,
# ukui-wallpapers, lomiri-wallpapers, hedgewars-data) are never installed here, and the generator
# refuses their files anyway (src/rci/training/corpus/sources.py: check_photo_allowed).
set -euo pipefail
packages=(gnome-backgrounds sway-backgrounds desktop-base fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[corpus] apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
