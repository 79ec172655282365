#!/usr/bin/env bash
# Installs the real-media pools of rci.training.realset when missing (idempotent):
#   gcompris-qt-data   real photographs inside Qt resource files: the bench's (animals, monuments,
#                      landscapes) and the validation pool's (the vocabulary photos of `lang`)
#   hyperrogue-music   composed music, ogg (the bench's)
#   asc-music          composed music, mp3 (the validation pool's)
#   espeak-ng          speech (bench: de/fr/es/it/pt; validation: nl/pl/sv)
# None of them feeds a training corpus (src/rci/training/corpus: Debian wallpapers, procedural
# content, English voices, procedural music). The packages reserved for someone else's evaluation
# (plasma-workspace-wallpapers, mate-backgrounds, ukui-wallpapers, lomiri-wallpapers*,
# hedgewars-data) are never installed here, and the pools refuse their files anyway.
set -euo pipefail
packages=(gcompris-qt-data hyperrogue-music asc-music espeak-ng fonts-dejavu-core)
installed=$(dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -c "install ok installed" || true)
[ "$installed" = "${#packages[@]}" ] && exit 0
echo "[realset] apt-get install ${packages[*]} (real-media pools: benchmark and validation)"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
