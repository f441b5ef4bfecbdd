#!/usr/bin/env bash
# The binary run by hand: --version, --help, unknown arguments, and no CNI_COMMAND from a
# terminal (a person) versus from a pipe (a runtime). No namespaces needed; `script` (util-linux)
# provides the terminal.
source "$(dirname "$0")/lib/lib.sh"

setup_run
B=$PLUGIN_DIR/bridge-ipam
# has TEXT PATTERN...: TEXT matches every extended regular expression PATTERN.
has() { local text=$1 p; shift; for p in "$@"; do grep -Eq -- "$p" <<<"$text" || return 1; done; }

echo "== --version"
out=$("$B" --version); rc=$?
check "--version exits 0" test $rc = 0
first=$(head -1 <<<"$out")
check "--version names the plugin and its version: $first" \
    has "$first" '^CNI bridge-ipam plugin v[0-9]+\.[0-9]+\.[0-9]+[^ ]*( \(git [0-9a-f]{7}(-dirty)?\))?$'
commit=$(git -C "$REPO" rev-parse --short=7 HEAD 2>/dev/null)
if [ -n "$commit" ] && cmp -s "$B" "$REPO/.build/release/bridge-ipam"; then
    check "a build from a checkout names its commit ($commit)" has "$first" "\\(git $commit"
fi
supported=$(echo '{}' | env -i CNI_COMMAND=VERSION "$B" | jq -r '.supportedVersions | join(", ")')
check "--version lists the CNI versions VERSION reports" test "$(sed -n 2p <<<"$out")" = "CNI protocol versions supported: $supported"

echo "== --help"
out=$("$B" --help); rc=$?
check "--help exits 0" test $rc = 0
for word in CNI_COMMAND CNI_NETNS "routes sync" bridge-ipam-agent --version; do
    check "--help mentions $word" has "$out" "$word"
done
check "-h is --help" test "$("$B" -h)" = "$out"

echo "== unknown arguments"
err=$("$B" --frobnicate 2>&1 >/dev/null); rc=$?
check "an unknown argument exits 2" test $rc = 2
check "an unknown argument is named, with the usage" has "$err" 'unknown argument --frobnicate' 'usage: bridge-ipam --help' 'routes sync'
check "--version takes no arguments (exit 2)" bash -c "'$B' --version extra >/dev/null 2>&1; test \$? = 2"
check "nothing on stdout for an unknown argument" test -z "$("$B" --frobnicate 2>/dev/null)"

echo "== without CNI_COMMAND"
out=$(script -qec "env -i '$B'" /dev/null </dev/null); rc=$?
check "from a terminal: exits non-zero ($rc)" test $rc -ne 0
check "from a terminal: says what it is and how to run it" has "$out" '^CNI bridge-ipam plugin v' 'is a CNI plugin' 'CNI_COMMAND=ADD'
check "from a terminal: no CNI error JSON" test -z "$(grep '"code"' <<<"$out")"
out=$(script -qec "env -i '$B' </dev/null" /dev/null </dev/null); rc=$?
check "stdout alone a terminal is a person too ($rc)" has "$rc $out" '^[1-9]' 'is a CNI plugin'
out=$(env -i "$B" </dev/null); rc=$?
check "from a pipe: the CNI error, code 4, exit 1" test "$rc $(jq -c '[.code, .msg]' <<<"$out")" = '1 [4,"CNI_COMMAND is not set"]'
out=$(script -qec "env -i CNI_COMMAND=VERSION '$B' </dev/null" /dev/null </dev/null | tr -d '\r')
check "with CNI_COMMAND set, a terminal changes nothing" test "$(jq -r .cniVersion <<<"$out" 2>/dev/null)" = 1.1.0

finish
