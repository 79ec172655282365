#!/usr/bin/env bash
# Installs the held-out media pools of benchmarks/bench_quality.py when missing (idempotent):
#   gcompris-qt-data   real photographs (animals, monuments, landscapes) inside Qt resource files
#   hyperrogue-music   composed music, ogg
#   espeak-ng          speech (the benchmark speaks German, French, Spanish, Italian, Portuguese)
# None of them feeds a training corpus (src/rci/training/corpus: Debian wallpapers, procedural
# content, English voices, procedural music). The packages reserved for someone else's evaluation
# (plasma-workspace-wallpapers, mate-backgrounds, ukui-wallpapers, lomiri-wallpapers*,
# hedgewars-data) are never installed here, and the benchmark refuses their files anyway.
set -euo pipefail
packages=(gcompris-qt-data hyperrogue-music espeak-ng fonts-dejavu-core)
installed=$(dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -c "install ok installed" || true)
[ "$installed" = "${#packages[@]}" ] && exit 0
echo "[bench_quality] apt-get install ${packages[*]} (held-out media pools)"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
