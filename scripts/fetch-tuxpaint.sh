#!/usr/bin/env bash
# Fetch the Tux Paint stamp pictures (PNG) and their captions (.txt) from the Debian package
# tuxpaint-stamps-default into a cache folder, WITHOUT installing the package: it is a ~160 MB
# download (~210 MB installed) mostly made of sound files we do not need; the PNG + TXT part is ~30 MB.
#
# Usage: scripts/fetch-tuxpaint.sh [DEST]
#   DEST defaults to $FLAMINGO_DATA/tuxpaint, else ~/.cache/flamingo-ts/tuxpaint.
# Result: DEST/stamps/<category>/.../<name>.png + <name>.txt, DEST/copyright (GPL-2), DEST/.complete.
set -euo pipefail

PKG=tuxpaint-stamps-default
DEST="${1:-${FLAMINGO_DATA:-$HOME/.cache/flamingo-ts}/tuxpaint}"

if [ -f "$DEST/.complete" ]; then
  echo "fetch-tuxpaint: already present in $DEST ($(cat "$DEST/.complete"))"
  exit 0
fi
for tool in apt-get apt-cache dpkg-deb tar; do
  command -v "$tool" >/dev/null || { echo "fetch-tuxpaint: needs $tool (a Debian/Ubuntu system)" >&2; exit 1; }
done

size=$(apt-cache show "$PKG" 2>/dev/null | awk '/^Size:/ { print $2; exit }')
version=$(apt-cache show "$PKG" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
if [ -z "$size" ]; then
  echo "fetch-tuxpaint: apt does not know $PKG; run 'apt-get update' first" >&2
  exit 1
fi
echo "fetch-tuxpaint: downloading $PKG $version ($((size / 1024 / 1024)) MiB) ..."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
(cd "$tmp" && apt-get download -q "$PKG" 2>&1 | grep -v 'unsandboxed' || true)
deb=$(find "$tmp" -maxdepth 1 -name "${PKG}_*.deb" | head -n 1)
[ -n "$deb" ] || { echo "fetch-tuxpaint: download of $PKG failed" >&2; exit 1; }

mkdir -p "$tmp/x"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards '*.png' '*.txt' "*/doc/$PKG/copyright"

rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
mv "$tmp/x/usr/share/tuxpaint/stamps" "$DEST.partial/stamps"
cp "$tmp/x/usr/share/doc/$PKG/copyright" "$DEST.partial/copyright"
echo "$PKG $version" > "$DEST.partial/.complete"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
echo "fetch-tuxpaint: $(find "$DEST/stamps" -name '*.png' | wc -l) pictures in $DEST"
