#!/usr/bin/env bash
# Writes the small seed corpora of the fuzz targets into fuzz/seeds/<target>/ (committed):
# real requests made with git against the same three-commit history the targets serve.
set -euo pipefail
cd "$(dirname "$0")"
out=seeds
rm -rf "$out"; mkdir -p "$out"/{pkt_line,upload_pack,receive_pack,delta,ref_name,jwt}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export GIT_CONFIG_NOSYSTEM=1 HOME=$tmp GIT_AUTHOR_NAME=Fuzz GIT_AUTHOR_EMAIL=fuzz@example.com \
  GIT_COMMITTER_NAME=Fuzz GIT_COMMITTER_EMAIL=fuzz@example.com \
  GIT_AUTHOR_DATE="1700000000 +0000" GIT_COMMITTER_DATE="1700000000 +0000"
pkt() { printf '%04x%s' $((${#1} + 4)) "$1"; }
git init -q -b main "$tmp/w"; cd "$tmp/w"
for i in 0 1 2; do
  f=$([ $i = 1 ] && echo dir/b.txt || echo a.txt); mkdir -p dir
  for _ in $(seq 1 $((20 + i))); do echo "line $i"; done > "$f"
  git add .; git commit -qm "commit $i"
  [ $i = 1 ] && { git branch topic; git tag -a v1 -m v1; }
done
c0=$(git rev-parse HEAD~2); c1=$(git rev-parse HEAD~1); c2=$(git rev-parse HEAD)
z=0000000000000000000000000000000000000000
cd - >/dev/null
# upload-pack: first byte 0 = v0, 1 = v2.
{ printf '\0'; pkt "want $c2 multi_ack_detailed side-band-64k thin-pack ofs-delta agent=git/2.47"$'\n'; printf 0000; pkt "done"$'\n'; } > $out/upload_pack/v0-clone
{ printf '\0'; pkt "want $c2 side-band-64k ofs-delta"$'\n'; pkt "deepen 1"$'\n'; printf 0000; pkt "have $c0"$'\n'; pkt "done"$'\n'; } > $out/upload_pack/v0-shallow
{ printf '\1'; pkt "command=ls-refs"$'\n'; printf 0001; pkt "peel"$'\n'; pkt "symrefs"$'\n'; pkt "ref-prefix refs/heads/"$'\n'; printf 0000; } > $out/upload_pack/v2-ls-refs
{ printf '\1'; pkt "command=fetch"$'\n'; printf 0001; pkt "thin-pack"$'\n'; pkt "ofs-delta"$'\n'; pkt "want $c2"$'\n'; pkt "have $c1"$'\n'; pkt "filter blob:none"$'\n'; pkt "done"$'\n'; printf 0000; } > $out/upload_pack/v2-fetch
# receive-pack: a new branch with a full pack, an update with a thin pack, a delete.
(cd "$tmp/w"; git pack-objects -q --stdout --revs <<<"$c2" > "$tmp/full.pack"
 printf '%s\n^%s\n' "$c2" "$c1" | git pack-objects -q --stdout --revs --thin > "$tmp/thin.pack")
{ pkt "$z $c2 refs/heads/new"$'\0'"report-status side-band-64k atomic"$'\n'; printf 0000; cat "$tmp/full.pack"; } > $out/receive_pack/create-full
{ pkt "$c1 $c2 refs/heads/topic"$'\0'"report-status"$'\n'; printf 0000; cat "$tmp/thin.pack"; } > $out/receive_pack/update-thin
{ pkt "$c1 $z refs/heads/topic"$'\0'"report-status delete-refs"$'\n'; printf 0000; } > $out/receive_pack/delete
{ pkt "$c2 $c1 refs/heads/main"$'\0'"report-status"$'\n'; printf 0000; } > $out/receive_pack/rewind
cp $out/upload_pack/v0-clone $out/pkt_line/; cp $out/receive_pack/delete $out/pkt_line/
printf '0000000100020005a\n' > $out/pkt_line/specials
# delta: source half, target half.
{ head -c 300 "$tmp/w/a.txt"; head -c 300 "$tmp/w/dir/b.txt"; } > $out/delta/texts
for n in refs/heads/main refs/heads/feature/x refs/tags/v1.0 'refs/heads/a..b' 'refs/heads/x.lock' 'refs/heads/@{x}' refs/notes/commits HEAD; do
  printf '%s' "$n" > "$out/ref_name/$(printf '%s' "$n" | tr -c 'a-zA-Z0-9' _)"
done
# jwt: a token-looking first half, a claims object second half.
t='eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMiLCJleHAiOjE3MDAwMDAwMDB9.c2ln'
c='{"sub":"6f1c2a8e-4b1d-4c8e-9f6a-0d3b2c1a4e5f","exp":1800000000,"nbf":1600000000,"scope":"orbit:repo:x/y:read","aud":["https://api.orbit.test"],"iss":"https://idp/"}'
python3 - "$t" "$c" > $out/jwt/hs256 <<'PY'
import sys; t, c = sys.argv[1], sys.argv[2]
pad = max(len(t), len(c)); sys.stdout.write(t.ljust(pad) + c.ljust(pad))
PY
ls -R "$out" | head -40
