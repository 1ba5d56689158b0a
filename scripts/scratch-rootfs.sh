#!/bin/sh
# Copies programs into a root filesystem for a `FROM scratch` image, each with the program
# interpreter and every shared library ldd resolves for it, at the paths ld.so looks in:
#
#   scripts/scratch-rootfs.sh ROOT PROGRAM[=PATH_IN_IMAGE]...
#
# A program is stripped of debug info on the way. Used by scripts/docker-image.sh (the
# ferrymq image) and by the container tests (an image of Debian's kcat and amqp-tools).
set -eu

root=$1
shift
for spec in "$@"; do
    bin=${spec%%=*}
    dest=${spec#*=}
    [ "$dest" = "$spec" ] && dest=$bin
    mkdir -p "$root$(dirname "$dest")"
    strip --strip-debug -o "$root$dest" "$bin"
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
