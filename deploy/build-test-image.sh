#!/usr/bin/env bash
# Builds the local image `jobs-test/busybox:latest` that the end-to-end tests
# run their jobs in. It needs no registry: the image is imported from a
# root filesystem made of the host's static busybox, one symlink per applet
# in /bin, /tmp and a minimal /etc/passwd.
#
# The image carries a label with the sha256 of its inputs (the busybox binary
# and this script). When an image with the same label exists, nothing is done.
set -euo pipefail

IMAGE="${JOBS_TEST_IMAGE:-jobs-test/busybox:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
LABEL="jobs-test.content-sha256"

if [[ ! -x "$BUSYBOX" ]]; then
    echo "build-test-image: $BUSYBOX is missing: install busybox-static" >&2
    exit 1
fi
if ! probe="$("$BUSYBOX" true 2>&1)"; then
    echo "build-test-image: $BUSYBOX does not run: $probe" >&2
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "build-test-image: $BUSYBOX is dynamically linked: install busybox-static" >&2
    exit 1
fi

content="$(cat "$BUSYBOX" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
existing="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
if [[ "$existing" == "$content" ]]; then
    echo "build-test-image: $IMAGE is up to date ($content)"
    exit 0
fi

old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
root="$workdir/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# One relative symlink per applet, as `busybox --install -s` would make, but
# all in /bin so that the image's PATH only needs /bin.
while read -r applet; do
    [[ -z "$applet" || "$applet" == "busybox" ]] && continue
    ln -sf busybox "$root/bin/$applet"
done < <("$BUSYBOX" --list)
for required in sh echo cat head tail sleep kill wc env dd seq true false yes sha256sum printf tr; do
    if [[ ! -L "$root/bin/$required" ]]; then
        echo "build-test-image: busybox has no '$required' applet" >&2
        exit 1
    fi
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
    docker import \
        --change "LABEL $LABEL=$content" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'WORKDIR /' \
        --message "jobs end-to-end test image" \
        - "$IMAGE" >/dev/null

# Prove the image works before the tests rely on it.
if ! out="$(docker run --rm "$IMAGE" sh -c 'echo ok')" || [[ "$out" != "ok" ]]; then
    echo "build-test-image: the new image $IMAGE does not run 'sh -c echo ok' (got: ${out:-nothing})" >&2
    exit 1
fi
# The previous build is now untagged; remove it unless something still uses it.
if [[ -n "$old_id" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "build-test-image: built $IMAGE ($content)"
