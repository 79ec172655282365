#!/usr/bin/env bash
# Installs the real-media pools of rci.training.realset when missing (idempotent):
#   gcompris-qt-data   real photographs inside Qt resource files: the bench's (animals, monuments,
#                      landscapes) and the validation pool's (the vocabulary photos of `lang`)
#   hyperrogue-music   composed music, ogg (the bench's)
#   asc-music          composed music, mp3 (the validation pool's)
#   espeak-ng          speech (bench: de/fr/es/it/pt; validation: nl/pl/sv; training: en/da/cs)
#   tuxpaint-stamps-default  photographs and drawings, cut out (the training pool's, with GCompris's
#                      object photos, paintings and planets that the other pools do not use)
#   xmoto-data         composed music, ogg (the training pool's)
# None of them feeds the generated training corpus (src/rci/training/corpus: Debian wallpapers,
# procedural content, English voices, procedural music); the training pool's real-media pairs are
# MatchLite's second source of training pairs (rci.training.serving), the other two pools never train.
# The packages reserved for someone else's evaluation (plasma-workspace-wallpapers, mate-backgrounds,
# ukui-wallpapers, lomiri-wallpapers*, hedgewars-data) are never installed here, and the pools refuse
# their files anyway.
set -euo pipefail
packages=(gcompris-qt-data hyperrogue-music asc-music espeak-ng fonts-dejavu-core tuxpaint-stamps-default xmoto-data)
installed=$(dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -c "install ok installed" || true)
[ "$installed" = "${#packages[@]}" ] && exit 0
echo "[realset] apt-get install ${packages[*]} (real-media pools: benchmark, validation, training)"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
