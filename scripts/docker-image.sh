#!/bin/sh
# Builds the ferrymq:latest image with nothing pulled (the build machines have a Docker engine
# but no registry): a `FROM scratch` image of the stripped release binary, exactly the shared
# libraries it links (from this machine's Debian), /etc/passwd and /etc/group naming the
# unprivileged user, and the data directory.
#
#   scripts/docker-image.sh [BINARY [TAG]]     (make docker builds the binary first)
#
# The build context is target/docker/ferrymq/; docker/Dockerfile describes the image.
set -eu

bin=${1:-target/release/ferrymq}
tag=${2:-ferrymq:latest}
ctx=target/docker/ferrymq
root=$ctx/rootfs

rm -rf "$ctx"
mkdir -p "$root/etc" "$root/tmp" "$ctx/data"
chmod 1777 "$root/tmp"
"$(dirname "$0")/scratch-rootfs.sh" "$root" "$bin=/usr/local/bin/ferrymq"

printf 'root:x:0:0:root:/:/sbin/nologin\nferrymq:x:10001:10001:ferrymq:/var/lib/ferrymq:/sbin/nologin\n' \
    > "$root/etc/passwd"
printf 'root:x:0:\nferrymq:x:10001:\n' > "$root/etc/group"

docker build --quiet -f docker/Dockerfile -t "$tag" "$ctx"
docker image ls "$tag" --format '{{.Repository}}:{{.Tag}} {{.Size}}'
