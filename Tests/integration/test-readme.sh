#!/usr/bin/env bash
# The README's walkthrough as executable documentation. Blocks marked `<!-- test: walkthrough -->`
# run in order in one shell (set -e), and a block marked `<!-- test: output -->` right after one
# is the stdout that block must print (trailing blanks ignored). So the README cannot drift
# from the binary.
#
# The README shows plain names; the test rewrites them to the run's: every namespace the
# walkthrough creates (`ip netns add NAME`) becomes $RUN-NAME, and /opt/cni/bin becomes the run's
# plugin directory (outputs are rewritten back before comparing). The walkthrough uses the
# config's default lease directory /var/lib/cni/networks, as a reader's run would; here it runs
# in a private mount namespace with a tmpfs over /var/lib/cni, so the machine's is never touched.
source "$(dirname "$0")/lib/lib.sh"

# extract MARKDOWN DIR: writes DIR/NN.sh for each runnable block and DIR/NN.expected for its
# output block; fails on a marker not followed by a fenced block, or an output block without a
# runnable block before it.
extract() {
    awk -v dir="$2" '
        function fail(msg) { print FILENAME ":" NR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
        /^<!-- test: walkthrough -->$/ { want = "sh"; next }
        /^<!-- test: output -->$/ { if (!n || !last_was_sh) fail("output block without a walkthrough block before it"); want = "expected"; next }
        want != "" && !inside {
            if ($0 !~ /^```/) fail("a test marker must be followed by a fenced block")
            if (want == "sh") n++
            file = sprintf("%s/%02d.%s", dir, n, want); printf "" > file
            inside = 1; last_was_sh = (want == "sh"); want = ""; next
        }
        inside && /^```$/ { inside = 0; close(file); next }
        inside { print > file; next }
        /[^ \t]/ { last_was_sh = 0 }
        END { if (!bad && (inside || want != "")) fail("unterminated test block"); if (!bad && !n) fail("no walkthrough block") }
    ' "$1"
}

# rewrite DIR: the names a reader sees become the run's, in every block.
rewrite() {
    local names
    names=$(cat "$1"/*.sh | awk '$1 == "ip" && $2 == "netns" && $3 == "add" { print $4 }' | sort -u | paste -sd'|')
    echo "$names" >"$1/names"
    [ -z "$names" ] || sed -i -E "s/\\b($names)\\b/$RUN-\\1/g" "$1"/*.sh
    sed -i "s#/opt/cni/bin#$PLUGIN_DIR#g" "$1"/*.sh
}

# unrewrite: the run's names back to the README's, blanks at line ends dropped.
unrewrite() { sed -E -e "s/$RUN-//g" -e "s#$PLUGIN_DIR#/opt/cni/bin#g" -e 's/[ \t]+$//'; }

# run_doc MARKDOWN DIR: extracts, runs and compares; prints what differs. Status 0 when all agree.
run_doc() {
    local doc=$1 dir=$2 script=$2/all.sh f n
    mkdir -p "$dir"
    extract "$doc" "$dir" || return 1
    rewrite "$dir"
    {
        echo "set -e -o pipefail"
        echo "cd '$REPO'"
        for f in "$dir"/*.sh; do
            [ "$f" = "$script" ] && continue
            n=$(basename "$f" .sh)
            echo "echo $n >'$dir/current'; exec >'$dir/$n.out' 2>'$dir/$n.err'"
            cat "$f"
        done
        echo "echo done >'$dir/current'"
    } >"$script"
    # A mount namespace of its own (slave: the machine's unmounts reach it, its mounts stay in it):
    # /var/lib/cni is a fresh tmpfs here and nowhere else.
    unshare --mount --propagation slave bash -c "
        if [ -d /var/lib/cni ]; then mount -t tmpfs bi-readme /var/lib/cni; else mount -t tmpfs bi-readme /var/lib; fi
        bash '$script'"
    local status=$? current
    current=$(cat "$dir/current" 2>/dev/null)
    if [ "$current" != done ]; then
        echo "    block $current failed (exit $status):"
        sed 's/^/      | /' "$dir/$current.sh"
        sed 's/^/      stderr: /' "$dir/$current.err"
        return 1
    fi
    local ok=0
    for f in "$dir"/*.expected; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .expected)
        if ! diff -u <(unrewrite <"$f") <(unrewrite <"$dir/$n.out") >"$dir/$n.diff"; then
            echo "    block $n printed something else than the README shows:"
            sed 's/^/      /' "$dir/$n.diff"
            ok=1
        fi
    done
    return $ok
}

setup_run

echo "== the harness catches drift"
# doc NAME LINE...: a small markdown file of LINEs; doc_fails/doc_passes run it.
doc() { local name=$1; shift; mkdir -p "$RUN_DIR/self"; printf '%s\n' "$@" >"$RUN_DIR/self/$name.md"; }
doc_fails() { ! run_doc "$RUN_DIR/self/$1.md" "$RUN_DIR/self/$1" >/dev/null 2>&1; }
doc_passes() { run_doc "$RUN_DIR/self/$1.md" "$RUN_DIR/self/$1"; }
doc drift '<!-- test: walkthrough -->' '```sh' 'echo 10.244.1.10/24' '```' '<!-- test: output -->' '```text' '10.244.1.11/24' '```'
check "an output that differs from the README fails" doc_fails drift
doc failing '<!-- test: walkthrough -->' '```sh' 'false' 'echo never' '```'
check "a failing command fails" doc_fails failing
doc unfenced '<!-- test: walkthrough -->' 'echo unfenced'
check "a marker without a block fails" doc_fails unfenced
doc orphan '```sh' 'echo 1' '```' '<!-- test: output -->' '```text' '1' '```'
check "an output block without a walkthrough block fails" doc_fails orphan
doc names '<!-- test: walkthrough -->' '```sh' 'ip netns add pod1' 'echo /run/netns/pod1 /opt/cni/bin/x' 'ip netns del pod1' '```' \
    '<!-- test: output -->' '```text' '/run/netns/pod1 /opt/cni/bin/x' '```'
check "names are rewritten to the run's and back" doc_passes names
check "...the block ran with the run's names" grep -qx "/run/netns/$RUN-pod1 $PLUGIN_DIR/x" "$RUN_DIR/self/names/01.out"

echo "== README.md: running it by hand"
run_doc "$REPO/README.md" "$RUN_DIR/readme"
status=$?
check "the walkthrough runs and prints what the README shows ($(ls "$RUN_DIR"/readme/[0-9]*.sh | wc -l) blocks, $(ls "$RUN_DIR"/readme/*.expected | wc -l) outputs)" test $status = 0
check "it created the namespaces it names, under the run's prefix ($(tr '|' ' ' <"$RUN_DIR/readme/names"))" \
    test "$(tr '|' ' ' <"$RUN_DIR/readme/names")" = "node1 pod1"
check "the machine's /var/lib/cni has no network of the walkthrough" test ! -e /var/lib/cni/networks/podnet

finish
